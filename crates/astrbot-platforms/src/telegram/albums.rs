//! Telegram sends an album (several photos posted at once) as one update
//! per photo, sharing a `media_group_id`; the caption comes with one of
//! them. AstrBot answers an album once, so its parts are gathered here
//! until none has come for a short while (`telegram_media_group_timeout`,
//! 2.5 s) and none is still downloading, or the first came a longer while
//! ago (`telegram_media_group_max_wait`, 10 s), and handed on as one
//! message. Until then the album holds its chat's later messages back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::in_order::Place;
use crate::message::{InboundMessage, MessagePart};

/// The albums being gathered, by `media_group_id`.
pub(super) struct Albums {
    open: Mutex<HashMap<String, Album>>,
    quiet: Duration,
    longest: Duration,
}

#[derive(Default)]
struct Album {
    /// The parts gathered so far, as one message.
    message: Option<InboundMessage>,
    started: Option<Instant>,
    /// Parts so far: a part's wait hands the album on only if no part
    /// came after it.
    parts: u64,
    /// Parts announced (`expect`) and still being downloaded.
    pending: u64,
    /// The parts' places in their chat's line, let go once the album is
    /// handed on.
    places: Vec<Place>,
}

impl Albums {
    pub fn new(quiet: Duration, longest: Duration) -> Self {
        Albums {
            open: Mutex::new(HashMap::new()),
            quiet,
            longest,
        }
    }

    /// Announces a part of album `group` as it arrives, before its photo
    /// is downloaded: the album waits for it, and holds `place` (and so
    /// its chat's later messages) until it is handed on.
    pub fn expect(&self, group: &str, place: Place) {
        let mut open = self.lock();
        let album = open.entry(group.to_owned()).or_default();
        album.started.get_or_insert_with(Instant::now);
        album.pending += 1;
        album.places.push(place);
    }

    /// Adds one part of album `group`; the album goes to `inbound` once
    /// it is complete.
    pub fn add(
        self: &Arc<Self>,
        group: &str,
        part: InboundMessage,
        inbound: &mpsc::Sender<InboundMessage>,
    ) {
        let (parts, wait) = {
            let mut open = self.lock();
            let album = open.entry(group.to_owned()).or_default();
            let started = *album.started.get_or_insert_with(Instant::now);
            match &mut album.message {
                // The first part's reply stands for the album; the others
                // add their pictures and text.
                Some(message) => message.chain.extend(
                    part.chain
                        .into_iter()
                        .filter(|part| !matches!(part, MessagePart::Reply { .. })),
                ),
                None => album.message = Some(part),
            }
            album.parts += 1;
            album.pending = album.pending.saturating_sub(1);
            let left = self.longest.saturating_sub(started.elapsed());
            (album.parts, self.quiet.min(left))
        };
        let longest = self.longest;
        let (albums, group, inbound) = (Arc::clone(self), group.to_owned(), inbound.clone());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let complete = {
                let mut open = albums.lock();
                let done = open.get(&group).is_some_and(|album| {
                    let waited_longest = album.started.is_some_and(|at| at.elapsed() >= longest);
                    album.parts == parts && (album.pending == 0 || waited_longest)
                });
                if done {
                    open.remove(&group)
                } else {
                    None
                }
            };
            let Some(mut album) = complete else {
                return;
            };
            // In its chat's line where its first part came.
            if let Some(first) = album.places.first_mut() {
                first.wait().await;
            }
            if let Some(message) = album.message {
                // The receiver is gone only while the server shuts down.
                let _ = inbound.send(message).await;
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Album>> {
        // Whole entries are inserted and removed; a poisoned map is sound.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Media, Sender};
    use astrbot_core::MessageType;

    fn photo(number: u8, caption: Option<&str>) -> InboundMessage {
        let mut chain = vec![MessagePart::Image(Media::Bytes {
            data: vec![number],
            mime: "image/jpeg".into(),
        })];
        chain.extend(caption.map(|text| MessagePart::Text(text.into())));
        InboundMessage {
            platform_id: "tg".into(),
            message_type: MessageType::Friend,
            session_id: "55".into(),
            sender: Sender {
                id: "55".into(),
                name: "Ada".into(),
            },
            self_id: "4242".into(),
            message_id: number.to_string(),
            chain,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_albums_photos_are_handed_on_once_together() {
        let albums = Arc::new(Albums::new(
            Duration::from_millis(2500),
            Duration::from_secs(10),
        ));
        let (inbound, mut received) = mpsc::channel(8);

        albums.add("g1", photo(1, Some("what are these?")), &inbound);
        tokio::time::sleep(Duration::from_secs(1)).await;
        albums.add("g1", photo(2, None), &inbound);
        albums.add("g2", photo(9, None), &inbound);
        tokio::time::sleep(Duration::from_secs(1)).await;
        albums.add("g1", photo(3, None), &inbound);
        assert!(
            received.try_recv().is_err(),
            "nothing before the album is quiet"
        );

        let first = received.recv().await.unwrap();
        let second = received.recv().await.unwrap();
        let (album, other) = if first.message_id == "1" {
            (first, second)
        } else {
            (second, first)
        };
        let pictures = album
            .chain
            .iter()
            .filter(|part| matches!(part, MessagePart::Image(_)))
            .count();
        assert_eq!(pictures, 3);
        assert_eq!(album.plain_text(), "what are these?");
        assert_eq!(other.message_id, "9");
    }

    #[tokio::test(start_paused = true)]
    async fn an_album_that_keeps_growing_is_handed_on_after_the_longest_wait() {
        let albums = Arc::new(Albums::new(
            Duration::from_millis(2500),
            Duration::from_secs(10),
        ));
        let (inbound, mut received) = mpsc::channel(8);
        let started = Instant::now();

        for number in 0..20 {
            albums.add("g1", photo(number, None), &inbound);
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Ok(album) = received.try_recv() {
                assert!(
                    started.elapsed() <= Duration::from_secs(11),
                    "{:?}",
                    started.elapsed()
                );
                assert!(album.chain.len() >= 10);
                return;
            }
        }
        panic!("the album was never handed on");
    }
}
