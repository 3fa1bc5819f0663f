#!/bin/sh
# Builds MicroPython's unix port with the Pico W's TLS settings, for tools/bench/tls_unix.py.
#
#   tools/build_unix_port.sh MICROPYTHON_SRC [OUT] [MANIFEST]
#
# MICROPYTHON_SRC: a v1.27.0 checkout with lib/mbedtls (the commit the tag pins) and
#   lib/micropython-lib filled in (`git submodule update --init lib/mbedtls lib/micropython-lib`);
#   no other submodule is needed: btree and ffi are left out.
# OUT: where the build goes (default build/unix-port); the source tree gets only mpy-cross.
# MANIFEST: a frozen manifest instead of asyncio alone, e.g. firmware/manifest.py for the frozen
#   baseline (it is included with the unix port's asyncio in place of a board's manifest).
#
# What is the Pico W's about it: a 32-bit build (object sizes as on the RP2040), mbedTLS
# configured as ports/rp2/mbedtls/mbedtls_config_port.h does (the common MicroPython config,
# bare metal: its buffers come from the MicroPython GC heap through m_tracked_calloc, no PEM
# parser, 16 KB in / 4 KB out record buffers). Entropy is the one difference: /dev/urandom
# instead of the RP2040's ring oscillator. Prints the path of the micropython binary last.
set -eu

SRC=$(cd "${1:?usage: $0 MICROPYTHON_SRC [OUT] [MANIFEST]}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "${2:-$ROOT/build/unix-port}" && cd "${2:-$ROOT/build/unix-port}" && pwd)
MANIFEST=${3:-}
[ -z "$MANIFEST" ] || MANIFEST=$(cd "$(dirname "$MANIFEST")" && pwd)/$(basename "$MANIFEST")

# The 32-bit build needs the multilib C library (Debian: gcc-multilib); installed when missing.
if ! echo 'int main(void){return 0;}' | cc -m32 -x c - -o /dev/null 2>/dev/null; then
    echo "no 32-bit C toolchain: installing gcc-multilib with apt-get" >&2
    apt-get update -qq && apt-get install -y -qq gcc-multilib >/dev/null
fi

for f in ports/unix/Makefile lib/mbedtls/library/ssl_tls.c lib/micropython-lib/README.md; do
    [ -f "$SRC/$f" ] || { echo "$SRC/$f missing: see the usage at the top of $0" >&2; exit 2; }
done

NAME=tls
[ -z "$MANIFEST" ] || NAME=frozen
VARIANT="$OUT/$NAME"
mkdir -p "$VARIANT"

cat > "$VARIANT/mpconfigvariant.h" <<'EOF'
// The standard unix variant, plus mbedTLS allocating on the GC heap (as MICROPY_TRACKED_ALLOC
// does on the rp2 port).
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)
#include "variants/mpconfigvariant_common.h"
#define MICROPY_TRACKED_ALLOC (1)
EOF

cat > "$VARIANT/mbedtls_config_rp2.h" <<'EOF'
// ports/rp2/mbedtls/mbedtls_config_port.h without the RP2040's clock and entropy hooks.
#ifndef MICROPY_INCLUDED_MBEDTLS_CONFIG_H
#define MICROPY_INCLUDED_MBEDTLS_CONFIG_H
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_CIPHER_MODE_CTR // the unix port's cryptolib wants it; code only, no heap
#define MICROPY_MBEDTLS_CONFIG_BARE_METAL (1)
#include "extmod/mbedtls/mbedtls_config_common.h"
#undef MBEDTLS_ENTROPY_HARDWARE_ALT
#undef MBEDTLS_NO_PLATFORM_ENTROPY
#endif
EOF

if [ -z "$MANIFEST" ]; then
    echo 'include("$(MPY_DIR)/extmod/asyncio")' > "$VARIANT/manifest.py"
else
    # The agent's recipe with the unix port's stand-in for a board manifest.
    printf 'include("%s", port_manifest="$(MPY_DIR)/extmod/asyncio")\n' "$MANIFEST" \
        > "$VARIANT/manifest.py"
fi

cat > "$VARIANT/mpconfigvariant.mk" <<EOF
MICROPY_FORCE_32BIT = 1
MICROPY_PY_BTREE = 0
MICROPY_PY_FFI = 0
MICROPY_PY_THREAD = 0
MICROPY_SSL_MBEDTLS = 1
MBEDTLS_CONFIG_FILE = '"mbedtls_config_rp2.h"'
FROZEN_MANIFEST = $VARIANT/manifest.py
EOF

JOBS=${JOBS:-2}
make -C "$SRC/mpy-cross" -j"$JOBS" >&2
make -C "$SRC/ports/unix" -j"$JOBS" VARIANT_DIR="$VARIANT" BUILD="$OUT/build-$NAME" >&2
echo "$OUT/build-$NAME/micropython"
