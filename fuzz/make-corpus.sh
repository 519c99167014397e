#!/bin/sh
# Seed the fuzz corpus with small real images: MBR with logicals, GPT, ext2/3/4,
# FAT12, swap and NTFS, each at most 128 KiB so the fuzzer stays fast.
# Needs sfdisk, mke2fs, mkfs.vfat, mkswap, mkntfs. Usage: fuzz/make-corpus.sh
set -eu
out="$(dirname "$0")/corpus/part_probe"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
img() { rm -f "$tmp/$1"; truncate -s "$2" "$tmp/$1"; }

img mbr 128K
printf 'label: dos\nlabel-id: 0x1234abcd\nstart=2, size=16, type=83\nstart=20, type=5\nstart=22, size=16, type=83\nstart=40, size=16, type=82\nstart=60, size=16, type=83\n' \
  | sfdisk -q "$tmp/mbr"
img gpt 128K
printf 'label: gpt\nfirst-lba: 34\nstart=40, size=64, type=U, name="EFI"\nstart=110, size=64, type=L\n' \
  | sfdisk -q "$tmp/gpt"
for t in ext2 ext3 ext4; do
  img "$t" 128K
  mke2fs -q -F -t "$t" -b 1024 -N 16 "$tmp/$t" 2>/dev/null || true
done
img fat 128K; mkfs.vfat -n FUZZ "$tmp/fat" >/dev/null
img swap 64K; mkswap -q -L s "$tmp/swap"
img ntfs 2M; mkntfs -F -Q -q "$tmp/ntfs" 2>/dev/null
head -c 131072 "$tmp/ntfs" > "$tmp/ntfs-head"; rm "$tmp/ntfs"
cp "$tmp"/* "$out"/
ls -l "$out"
