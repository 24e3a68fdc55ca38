#!/bin/sh
# Builds the freestanding test guest and prints the path of the ELF.
# Target dir: $VMM_TEST_GUEST_TARGET_DIR, else $CARGO_TARGET_DIR/test-guest,
# else test-guest/target.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=${VMM_TEST_GUEST_TARGET_DIR:-${CARGO_TARGET_DIR:-$here/target}/test-guest}
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
mkdir -p "$target"
# SSE is disabled: where KVM emulates every instruction (nested without
# hardware virtualization) its emulator cannot execute SSE moves. rustc
# warns that the x86-64 ABI wants SSE2; the guest uses no floating point.
RUSTFLAGS="-C relocation-model=static -C target-feature=+crt-static -C link-arg=-nostdlib -C link-arg=-static -C link-arg=-no-pie -C link-arg=-Wl,-Ttext=0x200000 -C link-arg=-Wl,--build-id=none -C target-feature=-sse,-sse2,-avx,-avx2" \
    cargo build --quiet --release --manifest-path "$here/Cargo.toml" --target-dir "$target" \
    >"$target.log" 2>&1 || { cat "$target.log" >&2; exit 1; }
echo "$target/release/test-guest"
