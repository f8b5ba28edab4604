#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh Debian machine and
# this one lacks: ffmpeg, espeak-ng and the DejaVu fonts (sample videos), a
# Java runtime, and the Firestore and Pub/Sub emulators of the Google Cloud
# CLI. Idempotent: when everything is there it changes nothing and never
# calls apt-get.
set -euo pipefail

log() { echo "install-deps: $*" >&2; }

if [ "$(id -u)" -eq 0 ]; then
	SUDO=()
elif command -v sudo >/dev/null 2>&1; then
	SUDO=(sudo)
else
	SUDO=()
fi

# installed PKG: is the Debian package installed?
installed() {
	dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed
}

want=()
need() { # need PKG REASON
	if ! installed "$1"; then
		log "missing $1 ($2)"
		want+=("$1")
	fi
}

command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need ffmpeg "sample videos"
command -v espeak-ng >/dev/null 2>&1 || need espeak-ng "sample narration"
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] &&
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] &&
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] ||
	need fonts-dejavu-core "slide text"
command -v java >/dev/null 2>&1 || need default-jre-headless "the emulators run on Java"

# The emulators: Debian packages of the Google Cloud CLI (they pull in
# google-cloud-cli, i.e. gcloud). The Pub/Sub emulator lives in
# /usr/lib/google-cloud-sdk/platform/pubsub-emulator, the Firestore one in
# .../cloud-firestore-emulator.
gcloud_pkgs=()
command -v gcloud >/dev/null 2>&1 || installed google-cloud-cli || gcloud_pkgs+=(google-cloud-cli)
[ -d /usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator ] || installed google-cloud-cli-firestore-emulator ||
	gcloud_pkgs+=(google-cloud-cli-firestore-emulator)
[ -d /usr/lib/google-cloud-sdk/platform/pubsub-emulator ] || installed google-cloud-cli-pubsub-emulator ||
	gcloud_pkgs+=(google-cloud-cli-pubsub-emulator)
for p in "${gcloud_pkgs[@]}"; do log "missing $p (Google Cloud CLI / emulators)"; done

if [ ${#want[@]} -eq 0 ] && [ ${#gcloud_pkgs[@]} -eq 0 ]; then
	log "nothing to install"
	exit 0
fi

if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
	log "not root and no sudo: install as root: ${want[*]} ${gcloud_pkgs[*]}"
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
	log "installing: $*"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# has_candidate PKG: does some configured apt source offer PKG?
has_candidate() {
	local c
	c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
	[ -n "$c" ] && [ "$c" != "(none)" ]
}

if [ ${#gcloud_pkgs[@]} -gt 0 ] && ! has_candidate "${gcloud_pkgs[0]}"; then
	# No apt source offers the Google Cloud CLI yet: add Google's
	# (https://cloud.google.com/sdk/docs/install#deb).
	log "adding the Google Cloud CLI apt repository (packages.cloud.google.com)"
	base=()
	command -v curl >/dev/null 2>&1 || base+=(curl)
	command -v gpg >/dev/null 2>&1 || base+=(gnupg)
	installed ca-certificates || base+=(ca-certificates)
	if [ ${#base[@]} -gt 0 ]; then
		log "apt-get update"
		"${SUDO[@]}" apt-get update
		apt_install "${base[@]}"
	fi
	curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg |
		"${SUDO[@]}" gpg --dearmor --yes -o /usr/share/keyrings/cloud.google.gpg
	echo "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main" |
		"${SUDO[@]}" tee /etc/apt/sources.list.d/google-cloud-sdk.list >/dev/null
fi

log "apt-get update"
"${SUDO[@]}" apt-get update
apt_install "${want[@]}" "${gcloud_pkgs[@]}"

# Check the result, so a broken install is reported here and not as a
# puzzling test failure later.
fail=0
for c in ffmpeg ffprobe espeak-ng java gcloud; do
	command -v "$c" >/dev/null 2>&1 || { log "still missing: $c"; fail=1; }
done
for d in pubsub-emulator cloud-firestore-emulator; do
	[ -d "/usr/lib/google-cloud-sdk/platform/$d" ] || { log "still missing: $d"; fail=1; }
done
[ "$fail" -eq 0 ] && log "done"
exit "$fail"
