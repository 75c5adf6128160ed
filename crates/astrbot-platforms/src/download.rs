//! Reading a file a platform serves (a Telegram photo, a Slack image) into
//! memory, within a size limit, with errors that never name the URL: the
//! URLs these files come from may hold a bot token.

/// The body of a successful response, at most `limit` bytes; the reason
/// otherwise (an HTTP status, a transfer error, the size).
pub(crate) async fn read_limited(
    sent: Result<reqwest::Response, reqwest::Error>,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut response = sent.map_err(|error| error.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| error.without_url().to_string())?
    {
        if bytes.len() + chunk.len() > limit {
            return Err(format!("the file is larger than {} MiB", limit >> 20));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
