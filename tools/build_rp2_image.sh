#!/bin/sh
# Builds MicroPython's rp2 port for the Raspberry Pi Pico W (BOARD=RPI_PICO_W): the stock image,
# or the agent frozen in with a manifest, to measure it against the Pico W's flash and RAM.
#
#   tools/build_rp2_image.sh MICROPYTHON_SRC [OUT] [MANIFEST]
#
# MICROPYTHON_SRC: a v1.27.0 checkout with the submodules the Pico W needs at the commits the tag
#   pins: lib/pico-sdk, lib/tinyusb, lib/cyw43-driver, lib/lwip, lib/btstack, lib/mbedtls and
#   lib/micropython-lib (`make -C ports/rp2 BOARD=RPI_PICO_W submodules`); pico-sdk's own
#   submodules are not needed: the port points the SDK at its lib/ copies.
# OUT: where the build goes (default build/rp2-port): build-rp2-stock, or build-rp2-frozen with a
#   MANIFEST; the source tree gets only mpy-cross.
# MANIFEST: a frozen manifest in place of the board's, e.g. firmware/manifest.py (it includes
#   the port's manifest itself; the board's bundle-networking and aioble are then left out).
# ROMFS_KB=N (environment, a multiple of 4): the stock image with an N KB ROMFS partition below
#   the filesystem (MICROPY_HW_ROMFS_BYTES, which the stock Pico W image sets to 0), for
#   `make deploy ROMFS=1`: the agent's .mpy run from flash in place, updated with mpremote and no
#   firmware build. The board folder is the source's RPI_PICO_W copied into OUT with that one
#   define added; the build goes to build-rp2-romfs.
#
# The ARM toolchain (Debian: gcc-arm-none-eabi, libnewlib-arm-none-eabi,
# libstdc++-arm-none-eabi-newlib) is installed when missing. The SDK wants picotool 2.1.1 for the
# .uf2, installed in OUT/picotool: the SDK clones it from GitHub and builds it there, or, offline,
# PICOTOOL_SRC=a picotool checkout at tag 2.1.1 is built there. Prints the path of firmware.uf2
# last, after the image's size against the flash below the filesystem (the link does not check
# that: its FLASH region is the whole 2 MB).
set -eu

SRC=$(cd "${1:?usage: $0 MICROPYTHON_SRC [OUT] [MANIFEST]}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "${2:-$ROOT/build/rp2-port}" && cd "${2:-$ROOT/build/rp2-port}" && pwd)
MANIFEST=${3:-}
[ -z "$MANIFEST" ] || MANIFEST=$(cd "$(dirname "$MANIFEST")" && pwd)/$(basename "$MANIFEST")
[ -z "$MANIFEST" ] || [ -f "$MANIFEST" ] || { echo "$3: no such manifest" >&2; exit 2; }

if ! command -v arm-none-eabi-gcc >/dev/null || ! echo '#include <stdio.h>' \
        | arm-none-eabi-gcc -E -x c - -o /dev/null 2>/dev/null; then
    echo "no ARM toolchain: installing gcc-arm-none-eabi and newlib with apt-get" >&2
    apt-get update -qq && apt-get install -y -qq gcc-arm-none-eabi libnewlib-arm-none-eabi \
        libstdc++-arm-none-eabi-newlib >/dev/null
fi

for f in pico-sdk/README.md tinyusb/src/tusb.h cyw43-driver/src/cyw43.h \
         lwip/src/include/lwip/init.h btstack/src/btstack.h mbedtls/library/ssl_tls.c \
         micropython-lib/README.md; do
    [ -f "$SRC/lib/$f" ] || { echo "$SRC/lib/$f missing: fill lib/${f%%/*} at the commit" \
        "v1.27.0 pins (git -C $SRC submodule update --init lib/${f%%/*}); see $0" >&2; exit 2; }
done

JOBS=${JOBS:-2}
export PICOTOOL_FETCH_FROM_GIT_PATH="$OUT/picotool"
if [ -n "${PICOTOOL_SRC:-}" ] && [ ! -x "$OUT/picotool/picotool/picotool" ]; then
    cmake -S "$PICOTOOL_SRC" -B "$OUT/picotool/picotool-build" -DPICO_SDK_PATH="$SRC/lib/pico-sdk" \
        -DPICOTOOL_NO_LIBUSB=1 -DPICOTOOL_FLAT_INSTALL=1 -DCMAKE_INSTALL_PREFIX="$OUT/picotool" >&2
    make -C "$OUT/picotool/picotool-build" -j"$JOBS" install >&2
fi

NAME=stock
[ -z "$MANIFEST" ] || NAME=frozen
ROMFS_KB=${ROMFS_KB:-0}
BOARD_DIR="$SRC/ports/rp2/boards/RPI_PICO_W"
if [ "$ROMFS_KB" != 0 ]; then
    [ -z "$MANIFEST" ] || { echo "ROMFS_KB and a MANIFEST: give one of them" >&2; exit 2; }
    [ $(( ROMFS_KB % 4 )) = 0 ] || { echo "ROMFS_KB=$ROMFS_KB: not a multiple of 4" >&2; exit 2; }
    NAME=romfs
    BOARD_DIR="$OUT/board-romfs/RPI_PICO_W"
    rm -rf "$BOARD_DIR" && mkdir -p "$(dirname "$BOARD_DIR")"
    cp -r "$SRC/ports/rp2/boards/RPI_PICO_W" "$BOARD_DIR"
    printf '\n#define MICROPY_HW_ROMFS_BYTES (%d * 1024)\n' "$ROMFS_KB" \
        >> "$BOARD_DIR/mpconfigboard.h"
fi

# The port's make runs cmake only for a new build folder: one configured with another manifest
# would go on freezing that one's files. Such a folder is built afresh. (A stock configure
# leaves the cache without the entry.)
B="$OUT/build-rp2-$NAME"
if [ "$NAME" = romfs ]; then
    rm -rf "$B"  # the size lives in a header cmake does not track across board folders
    stale() { false; }
elif [ -z "$MANIFEST" ]; then
    stale() { grep -q "^MICROPY_FROZEN_MANIFEST:" "$B/CMakeCache.txt"; }
else
    stale() { ! grep -qxF "MICROPY_FROZEN_MANIFEST:UNINITIALIZED=$MANIFEST" "$B/CMakeCache.txt"; }
fi
if [ -f "$B/CMakeCache.txt" ] && stale; then
    echo "$B was configured for another manifest: building it afresh" >&2
    rm -rf "$B"
fi
make -C "$SRC/mpy-cross" -j"$JOBS" >&2
make -C "$SRC/ports/rp2" BOARD_DIR="$BOARD_DIR" BUILD="$B" \
    ${MANIFEST:+FROZEN_MANIFEST="$MANIFEST"} -j"$JOBS" >&2

# The filesystem takes the top MICROPY_HW_FLASH_STORAGE_BYTES (848 KB) of the Pico W's 2 MB, a
# ROMFS the ROMFS_KB below it (rp2_flash.c).
FS_KB=$(sed -n 's/.*MICROPY_HW_FLASH_STORAGE_BYTES *(\([0-9]*\) \* 1024).*/\1/p' \
    "$BOARD_DIR/mpconfigboard.h")
FS_KB=$(( FS_KB + ROMFS_KB ))
END=$(arm-none-eabi-nm "$B/firmware.elf" \
    | sed -n 's/^\(.*\) . __flash_binary_end$/\1/p')
IMAGE=$(( 0x$END - 0x10000000 )) REGION=$(( (2048 - FS_KB) * 1024 ))
echo "image $IMAGE bytes of the $REGION below the filesystem and ROMFS ($ROMFS_KB KB):" \
    "$(( REGION - IMAGE )) free" >&2
[ "$IMAGE" -le "$REGION" ] || { echo "the image overlaps the filesystem" >&2; exit 1; }
echo "$B/firmware.uf2"
