#!/usr/bin/env bash
# Build the cloud-init test guest: a small Debian root file system made with debootstrap from the Debian mirror
# this machine's apt already uses (no other downloads), with cloud-init, Debian's cloud kernel and an initramfs
# from initramfs-tools, into OUTDIR. Cached: if OUTDIR holds a complete build by this same script (its stamp file
# records a hash of this file), it does nothing.
#   usage: scripts/cloud-guest.sh OUTDIR
# Output:
#   OUTDIR/vmlinuz     the kernel of linux-image-cloud-amd64, installed in the root file system
#   OUTDIR/initrd.img  its initramfs (initramfs-tools, MODULES=list: the virtio modules below)
#   OUTDIR/disk.qcow2  the root file system: ext4 without a partition table, made without mounting (mkfs -d)
#   OUTDIR/cmdline     the kernel command line to boot it with
#   OUTDIR/rootfs/     the same root file system as a directory: tests chroot into it to run this cloud-init's
#                      own OpenStack metadata reader against the metadata API on the host's loopback
#   OUTDIR/README      what the guest does
#   OUTDIR/build-seconds  how long the last build took
# Boot it by direct kernel boot (machine 'pc', root disk on virtio) with the command line in OUTDIR/cmdline:
#   root=/dev/vda rw console=ttyS0 quiet panic=-1
# There is no systemd: /sbin/init is a shell script that mounts what cloud-init needs, loads the drivers of the
# config drive (IDE CD-ROM, iso9660) and of virtio NICs, and runs cloud-init's four stages in order (init --local,
# init, modules --mode=config, modules --mode=final), as its systemd units would, printing on ttyS0:
#   STRATUS-CLOUD-INIT: start
#   ... cloud-init's own output (its datasource, "Authorized keys from ..." with the keys' fingerprints) ...
#   STRATUS-CLOUD-INIT: done <seconds since boot>s instance-id <the datasource's> hostname <cloud-init's>
# then idles. cloud-init's configuration (/etc/cloud/cloud.cfg.d/90-stratus.cfg): datasource_list [ConfigDrive,
# OpenStack], and module lists without the ones that need a package mirror, a locale build, NTP or systemd.
set -euo pipefail
out=$(realpath -m "${1:?output directory}")
self=$(readlink -f "$0")
CMDLINE="root=/dev/vda rw console=ttyS0 quiet panic=-1"
# initramfs modules, for a virtio root disk on the cloud kernel (ext4 is built in).
INITRAMFS_MODULES=(virtio_pci virtio_blk)
# Loaded by /sbin/init (no udev): the config drive as an IDE CD-ROM, and virtio NICs.
GUEST_MODULES=(ata_piix sr_mod cdrom isofs virtio_net)
stamp="$(sha256sum "$self" | cut -d' ' -f1)"
complete() {
    [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ] \
        && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ -s "$out/disk.qcow2" ] && [ -s "$out/cmdline" ] \
        && [ -x "$out/rootfs/usr/bin/cloud-init" ]
}
complete && exit 0
mkdir -p "$out"
exec 9>"$out/.lock"   # one build at a time; a second caller waits for the first and finds its result
flock 9
complete && exit 0
started=$(date +%s)

# Tools: debootstrap, mkfs.ext4 with -d, qemu-img.
missing=()
for p in debootstrap e2fsprogs qemu-utils; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# The mirror: the one apt here fetches this release's main component from.
. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
mirror_of() {
    apt-get indextargets --format '$(REPO_URI) $(CODENAME) $(COMPONENT)' 'Identifier: Packages' 2>/dev/null \
        | awk -v s="$suite" '$2 == s && $3 == "main" { print $1; exit }'
}
mirror=$(mirror_of)
if [ -z "$mirror" ]; then
    apt-get update -qq >/dev/null
    mirror=$(mirror_of)
fi
[ -n "$mirror" ] || { echo "cloud-guest.sh: apt has no $suite main repository to debootstrap from" >&2; exit 1; }

work=$(mktemp -d -t stratus-cloud-guest.XXXXXX)
root=$work/root
cleanup() {
    if mountpoint -q "$root/proc" 2>/dev/null; then
        umount "$root/proc" || umount -l "$root/proc"
    fi
    mountpoint -q "$root/proc" 2>/dev/null || rm -rf "$work"
}
trap cleanup EXIT

# The root file system. ifupdown: the renderer cloud-init writes a network configuration for without systemd;
# isc-dhcp-client (a dependency of cloud-init) is its DHCP client. python3-cffi-backend: it provides the virtual
# packages python3-cryptography depends on, which debootstrap's resolver does not follow.
packages=cloud-init,linux-image-cloud-amd64,ifupdown,kmod,python3-cffi-backend
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -q -n 20 "$work/debootstrap.log" "$root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
         echo "cloud-guest.sh: debootstrap from $mirror failed (see above)" >&2; exit 1; }

kver=$(ls "$root/lib/modules")
[ "$(wc -w <<<"$kver")" = 1 ] || { echo "cloud-guest.sh: expected one kernel, found: $kver" >&2; exit 1; }

# The initramfs: only the virtio drivers the root disk needs (the default, MODULES=most, is ~4 times larger).
printf 'MODULES=list\nCOMPRESS=gzip\n' >"$root/etc/initramfs-tools/conf.d/stratus.conf"
printf '%s\n' "${INITRAMFS_MODULES[@]}" >"$root/etc/initramfs-tools/modules"
mount -t proc proc "$root/proc"
chroot "$root" update-initramfs -c -k "$kver" >"$work/initramfs.log" 2>&1 \
    || { cat "$work/initramfs.log" >&2; exit 1; }
umount "$root/proc"

# cloud-init's configuration.
cat >"$root/etc/cloud/cloud.cfg.d/90-stratus.cfg" <<'EOF'
# Stratus cloud-init test guest (scripts/cloud-guest.sh): Nova's two datasources, and only the modules that work
# without a package mirror, a locale build, NTP or systemd.
datasource_list: [ConfigDrive, OpenStack]
# no sshd (and no ssh-keygen) in this guest: the keys are installed for the default user, no host keys made
ssh_genkeytypes: []
datasource:
  OpenStack:
    timeout: 5
    max_wait: 10
cloud_init_modules:
  - seed_random
  - bootcmd
  - write-files
  - set_hostname
  - update_hostname
  - update_etc_hosts
  - users-groups
  - ssh
cloud_config_modules:
  - runcmd
cloud_final_modules:
  - scripts-per-once
  - scripts-per-boot
  - scripts-per-instance
  - scripts-user
  - ssh-authkey-fingerprints
  - final-message
EOF

modprobes=""
for m in "${GUEST_MODULES[@]}"; do
    modprobes="$modprobes$m "
done
cat >"$root/sbin/init" <<EOF
#!/bin/sh
# Stratus cloud-init test guest (scripts/cloud-guest.sh): no systemd; mount what cloud-init needs and run its
# stages as its systemd units would, then idle.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /dev/pts /run/lock
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
exec </dev/console >/dev/console 2>&1
hostname localhost
ip link set lo up
for m in $modprobes; do
    modprobe -q \$m
done
echo "STRATUS-CLOUD-INIT: start"
cloud-init init --local
# what networking.service does between the two stages: bring up what cloud-init rendered for ifupdown (a NIC
# without a DHCP server gives up after the timeout)
timeout 40 ifup -a
cloud-init init
cloud-init modules --mode=config
cloud-init modules --mode=final
iid=\$(cat /var/lib/cloud/data/instance-id 2>/dev/null)
echo "STRATUS-CLOUD-INIT: done \$(cut -d' ' -f1 /proc/uptime)s instance-id \${iid:-none} hostname \$(hostname)"
while true; do
    sleep 3600 &
    wait
done
EOF
chmod 755 "$root/sbin/init"
echo "/dev/vda / ext4 rw 0 1" >"$root/etc/fstab"
echo localhost >"$root/etc/hostname"

# What a guest needs no copy of: apt's lists and archives, documentation, man pages, translations.
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/initrd.img"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log "$root/boot/initrd.img-$kver"
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +

# The root disk: ext4 filled from the directory (mkfs.ext4 -d keeps owners, modes and device nodes), with room to
# spare, converted to qcow2.
used_mib=$(du -sm "$root" | cut -f1)
truncate -s $(( (used_mib + 384) / 64 * 64 + 64 ))M "$work/disk.raw"
mkfs.ext4 -q -F -L cloudimg-rootfs -d "$root" "$work/disk.raw"
qemu-img convert -q -c -f raw -O qcow2 "$work/disk.raw" "$work/disk.qcow2"

ci_version=$(chroot "$root" dpkg-query -W -f='${Version}' cloud-init)
cat >"$work/README" <<EOF
Stratus cloud-init test guest, built by scripts/cloud-guest.sh with debootstrap ($suite, minbase) from $mirror:
cloud-init $ci_version, kernel $kver, root file system ${used_mib} MiB.
Boot vmlinuz + initrd.img directly (machine 'pc') with the command line: $CMDLINE
The root disk (virtio, /dev/vda) is disk.qcow2. /sbin/init (no systemd) runs cloud-init's four stages with
datasource_list [ConfigDrive, OpenStack], printing on ttyS0 STRATUS-CLOUD-INIT: start, then
STRATUS-CLOUD-INIT: done <uptime>s instance-id <id> hostname <name>.
EOF

rm -f "$out/.stamp"
cp "$work/vmlinuz" "$work/initrd.img" "$work/disk.qcow2" "$work/README" "$out/"
rm -rf "$out/rootfs"
mv "$root" "$out/rootfs"
echo "$CMDLINE" >"$out/cmdline"
echo $(( $(date +%s) - started )) >"$out/build-seconds"
echo "$stamp" >"$out/.stamp"
echo "cloud-init guest (cloud-init $ci_version, $kver) in $out, built in $(cat "$out/build-seconds")s"
