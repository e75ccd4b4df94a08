#!/usr/bin/env bash
# Prints the path of a kustomize binary (v5) for deploy/k8s, on stdout; everything else goes to stderr.
#   1. $KUSTOMIZE, if set (used as given: the caller chose it);
#   2. `kustomize` on PATH, if it is a v5;
#   3. the pinned one, built once with Go into ${XDG_CACHE_HOME:-~/.cache}/backorder/bin (about 100 s).
# Exits non-zero, saying why, when none can be had. Usage: "$(deploy/k8s/kustomize.sh)" build deploy/k8s/base
set -euo pipefail

PINNED_MODULE=sigs.k8s.io/kustomize/kustomize/v5
PINNED_VERSION=v5.7.1
BIN_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/backorder/bin"

say() { printf 'kustomize.sh: %s\n' "$*" >&2; }

# "v5.7.1" from the output of `kustomize version` (v5 prints the bare version, v4 a struct).
version_of() { "$1" version 2>/dev/null | grep -Eo 'v[0-9]+\.[0-9]+\.[0-9]+' | head -n 1 || true; }

if [[ -n "${KUSTOMIZE:-}" ]]; then
    if [[ -x "$KUSTOMIZE" ]]; then
        printf '%s\n' "$KUSTOMIZE"
        exit 0
    fi
    say "KUSTOMIZE=$KUSTOMIZE is not an executable file"
    exit 1
fi

if on_path="$(command -v kustomize 2>/dev/null)"; then
    case "$(version_of "$on_path")" in
        v5.*) printf '%s\n' "$on_path"; exit 0 ;;
        *) say "ignoring $on_path: not kustomize v5" ;;
    esac
fi

pinned="$BIN_DIR/kustomize"
if [[ -x "$pinned" && "$(version_of "$pinned")" == "$PINNED_VERSION" ]]; then
    printf '%s\n' "$pinned"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    say "no kustomize found: set KUSTOMIZE, put kustomize v5 on PATH, or install Go so that" \
        "$PINNED_MODULE@$PINNED_VERSION can be built into $BIN_DIR"
    exit 1
fi

# Built into a private folder and moved into place, so that two builds at once never leave half a binary.
mkdir -p "$BIN_DIR"
work="$(mktemp -d "$BIN_DIR/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
say "building $PINNED_MODULE@$PINNED_VERSION into $BIN_DIR (once; about 100 s)"
if ! GOBIN="$work" go install "$PINNED_MODULE@$PINNED_VERSION" >&2; then
    say "go install $PINNED_MODULE@$PINNED_VERSION failed (see above)"
    exit 1
fi
mv -f "$work/kustomize" "$pinned"
printf '%s\n' "$pinned"
