#!/usr/bin/env bash
# Fetches Debian's stock kernel for the test VM into a cache folder and prints
# the folder it is unpacked in (boot/vmlinuz-VERSION, lib/modules/VERSION/).
#
#   fetch-kernel.sh CACHE_DIR
#
# The version is whatever linux-image-amd64 depends on in the apt lists. The
# package is downloaded with `apt-get download` and unpacked with `dpkg -x`;
# it is never installed. A version already in the cache is not downloaded
# again. Missing or stale apt lists get one `apt-get update`.
set -euo pipefail

cache=${1:?usage: fetch-kernel.sh CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { echo "fetch-kernel: $*" >&2; }

# Prints the versioned image package linux-image-amd64 depends on, e.g.
# linux-image-6.1.0-56-amd64; prints nothing when the apt lists do not know it.
resolve_package() {
  { apt-cache depends linux-image-amd64 2>/dev/null || true; } |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# Prints the newest package already unpacked in the cache, if any.
newest_cached_package() {
  local dir
  for dir in "$cache"/linux-image-*; do
    if [[ -f $dir/unpacked.stamp ]]; then basename "$dir"; fi
  done | sort -V | tail -n 1
}

updated=no
apt_update_once() {
  [[ $updated == yes ]] && return 1
  updated=yes
  log "refreshing apt lists (apt-get update)"
  apt-get update -q >&2
}

package=$(resolve_package)
if [[ -z $package ]]; then
  cached=$(newest_cached_package)
  if [[ -n $cached ]]; then
    log "apt lists do not name a kernel; using cached $cached"
    package=$cached
  else
    apt_update_once || true
    package=$(resolve_package)
  fi
fi
if [[ -z $package ]]; then
  log "cannot resolve linux-image-amd64 to a versioned kernel package (apt-cache depends linux-image-amd64)"
  exit 1
fi

dest=$cache/$package
if [[ -f $dest/unpacked.stamp ]]; then
  echo "$dest"
  exit 0
fi

download() {
  local pkg=$1
  ls "$cache"/"$pkg"_*.deb >/dev/null 2>&1 && return 0
  local tmp
  tmp=$(mktemp -d "$cache/download.XXXXXX")
  log "downloading $pkg (apt-get download)"
  # Run as root, apt cannot hand the download to its _apt user in a private
  # folder; the sandbox user is set to root only for this download.
  if (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2); then
    mv "$tmp"/*.deb "$cache"/
    rmdir "$tmp"
    return 0
  fi
  rm -rf "$tmp"
  return 1
}

if ! download "$package"; then
  # A stale list names a version the archive no longer serves: refresh the
  # lists once, resolve the version again and retry.
  if apt_update_once; then
    package=$(resolve_package)
    dest=$cache/$package
    if [[ -z $package ]] || ! download "$package"; then
      log "apt-get download of the kernel package failed after apt-get update"
      exit 1
    fi
  else
    log "apt-get download $package failed"
    exit 1
  fi
fi

debs=("$cache"/"$package"_*.deb)
deb=${debs[-1]}
log "unpacking $(basename "$deb") (dpkg -x)"
rm -rf "$dest"
staging=$(mktemp -d "$cache/unpack.XXXXXX")
dpkg -x "$deb" "$staging"
version=${package#linux-image-}
if [[ ! -f $staging/boot/vmlinuz-$version || ! -d $staging/lib/modules/$version ]]; then
  log "$deb holds no boot/vmlinuz-$version or lib/modules/$version"
  rm -rf "$staging"
  exit 1
fi
mv "$staging" "$dest"
echo "$version" >"$dest/unpacked.stamp"
# The unpacked tree is the cache from here on.
rm -f "$deb"
echo "$dest"
