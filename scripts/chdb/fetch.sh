#!/usr/bin/env bash
# Fetch libchdb.so (the embedded ClickHouse engine) from the npm registry into the kprobe cache,
# never into the repository. Idempotent: does nothing when the library is already there.
# Prints the library's full path; pass it to Go as CHDB_LIB_PATH.
set -euo pipefail

pkg="@chdb/lib-linux-x64-gnu"
version="${CHDB_VERSION:-26.5.3}"
dest="${KPROBE_CACHE:-${HOME}/.cache/kprobe}/chdb"
lib="${dest}/libchdb.so"

die() { echo "fetch.sh: $*" >&2; exit 1; }

if [[ -s "${lib}" && "$(cat "${dest}/VERSION" 2>/dev/null)" == "${version}" ]]; then
	echo "${lib}"
	exit 0
fi

command -v npm >/dev/null || die "npm not found: install Node.js/npm (needed to fetch ${pkg})"
command -v tar >/dev/null || die "tar not found"
[[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] || die "${pkg} is built for Linux x86_64 only (this is $(uname -s)-$(uname -m))"

mkdir -p "${dest}" || die "cannot create ${dest}"
tmp="$(mktemp -d "${dest}/.fetch.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT

echo "fetch.sh: fetching ${pkg}@${version} from the npm registry into ${dest} ..." >&2
(cd "${tmp}" && npm pack --silent "${pkg}@${version}" >/dev/null) \
	|| die "npm pack ${pkg}@${version} failed (is the npm registry reachable?)"
tgz="$(ls "${tmp}"/*.tgz 2>/dev/null | head -n1)"
[[ -n "${tgz}" ]] || die "npm pack produced no tarball"
tar -xzf "${tgz}" -C "${tmp}" || die "cannot unpack ${tgz}"
found="$(find "${tmp}" -name libchdb.so -type f | head -n1)"
[[ -n "${found}" ]] || die "libchdb.so not found inside ${pkg}@${version}"

# Rename within one file system so a concurrent reader never sees a partial library.
mv -f "${found}" "${lib}.part" && mv -f "${lib}.part" "${lib}" || die "cannot move libchdb.so into ${dest}"
echo "${version}" >"${dest}/VERSION"
echo "${lib}"
