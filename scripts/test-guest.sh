#!/usr/bin/env bash
# Build the tiny test guest for the libvirt integration tests and benchmarks from Debian packages only (no
# other downloads), into OUTDIR. Cached: if OUTDIR holds a complete build by this same script (its stamp file
# records a hash of this file), it does nothing.
#   usage: scripts/test-guest.sh OUTDIR
# Output:
#   OUTDIR/vmlinuz     Debian's cloud kernel (the linux-image-*-cloud-amd64 that linux-image-cloud-amd64
#                      currently depends on; downloaded with apt-get download, unpacked, never installed)
#   OUTDIR/initrd.img  gzip'd newc cpio: busybox-static, the kernel modules below, and /init
#   OUTDIR/disk.qcow2  64 MiB ext4 (made without mounting) holding /stratus-disk = "stratus-test-disk"
#   OUTDIR/README      what the guest does
# Boot it by direct kernel boot (<kernel>, <initrd>, <cmdline> in the domain XML; machine 'pc', ACPI on,
# root disk on virtio) with the kernel command line
#   console=ttyS0 quiet panic=-1
# Everything runs from the initramfs (no root= mount). /init mounts proc, sys and devtmpfs, loads the modules
# and prints on the serial console (ttyS0):
#   STRATUS-CMDLINE: <kernel command line>
#   STRATUS-DISK: <content of /stratus-disk on /dev/vda, mounted read-only>   (or "none")
#   STRATUS-METADATA: <uuid from openstack/latest/meta_data.json on the config drive labelled config-2> (or "none")
#   STRATUS-HOSTNAME: <hostname from that meta_data.json>                       (or "none")
#   STRATUS-KEY: <MD5 fingerprint (aa:bb:...) of the first key in its "keys">   (or "none")
#   STRATUS-USERDATA: <first line of openstack/latest/user_data>                 (or "none")
#   STRATUS-NET: <interface> <MAC> for each NIC (or "none")
#   STRATUS-GUEST-BOOTED       once busybox acpid listens for the ACPI power button
# and meanwhile, in the background, for each NIC (busybox udhcpc, asking for the classless static routes too):
#   STRATUS-IP: <interface> <address>/<prefix> router=<router> routes=<classless routes>   (or "<interface> none")
# then, when a lease routes 169.254.169.254, what the metadata service at that address says (busybox nc):
#   STRATUS-MD-NET: <uuid from openstack/latest/meta_data.json> <its hostname> <latest/meta-data/local-ipv4>
#   STRATUS-MD-NET-KEY: <MD5 fingerprint of its first key>   STRATUS-MD-NET-USERDATA: <user_data's first line>
#   STRATUS-MD-NET-MAC: <the first link's MAC in openstack/latest/network_data.json>     (each "none" if absent)
# then, for each address in stratus.ping=A,B,... on the kernel command line (a few tries each, for up to 120 s,
# so that a peer booting at the same time is found):
#   STRATUS-PING: <address> ok|fail
#   STRATUS-PING-DONE
# then watches, about once a second, until it powers off: a NIC plugged later (hot plug) is reported and asks for
# its lease as above, one unplugged is reported, and each address of stratus.watch=A,B is pinged, each change of
# its answer printed (its first answer too):
#   STRATUS-NET: <interface> <MAC>   STRATUS-IP: <interface> ...   STRATUS-NET-GONE: <interface>
#   STRATUS-REACH: <address> ok|fail
# With stratus.tick on the kernel command line, a background loop also prints, from the start of /init on, once
# a second, a counter that only this boot of the guest increments (a live migration keeps it going; a reboot
# starts it again at 1):
#   STRATUS-TICK: <n>
# The power button (virsh shutdown / reboot) prints STRATUS-GUEST-SHUTDOWN, syncs and
# powers off at once. The cloud kernel has no AHCI driver: attach a config drive as an IDE CD-ROM (machine
# 'pc') or a virtio disk, not on SATA.
set -euo pipefail
out=$(realpath -m "${1:?output directory}")
self=$(readlink -f "$0")
CMDLINE="console=ttyS0 quiet panic=-1"
# Modules to load, dependencies first (checked against the package's modules.dep at build time). ext4, jbd2,
# mbcache, crc16 and crc32c are built into this kernel, as are the 8250 serial console and the i8042 devices.
MODULES=(
    virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci  # virtio PCI transport
    virtio_blk                                                                 # /dev/vda, config drive as vdb
    failover net_failover virtio_net                                           # NIC
    scsi_common scsi_mod virtio_scsi sd_mod                                    # virtio-scsi disks
    libata ata_piix cdrom sr_mod                                               # IDE CD-ROM (/dev/sr0)
    isofs fat vfat nls_cp437 nls_ascii                                         # config drive: iso9660 or vfat
    button evdev                                                               # ACPI power button for acpid
)
stamp="$(sha256sum "$self" | cut -d' ' -f1)"
complete() {
    [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ] \
        && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ -s "$out/disk.qcow2" ]
}
complete && exit 0
mkdir -p "$out"
exec 9>"$out/.lock"   # one build at a time; a second caller waits for the first and finds its result
flock 9
complete && exit 0

# Tools: busybox-static (the guest's userland), cpio, mkfs.ext4 with -d, qemu-img.
missing=()
for p in busybox-static cpio e2fsprogs qemu-utils; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

work=$(mktemp -d -t stratus-test-guest.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

# The kernel package the cloud metapackage points at now (refresh the package lists once if it is unknown).
kernel_pkg() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -1
}
pkg=$(kernel_pkg)
if [ -z "$pkg" ]; then
    apt-get update -qq >/dev/null
    pkg=$(kernel_pkg)
fi
[ -n "$pkg" ] || { echo "test-guest.sh: no linux-image-*-cloud-amd64 package found" >&2; exit 1; }
if ls /var/cache/apt/archives/"$pkg"_*.deb >/dev/null 2>&1; then
    cp /var/cache/apt/archives/"$pkg"_*.deb .   # apt has it already: no download
elif ! apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null   # stale lists: that version may be gone from the mirror
    pkg=$(kernel_pkg)
    apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null
fi
dpkg-deb -x ./"$pkg"_*.deb kernel
kver=$(ls kernel/lib/modules)
moddir=kernel/lib/modules/$kver
busybox depmod -b kernel "$kver"

# The initramfs: busybox and its applets, the modules in load order, /init and the acpid configuration.
root=$work/initramfs
mkdir -p "$root"/{bin,dev,proc,sys,mnt/disk,mnt/config,etc/acpi/PWRF,lib/modules}
cp /bin/busybox "$root/bin/busybox"
for applet in $(busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
mknod -m 600 "$root/dev/console" c 5 1
loaded=" "
for m in "${MODULES[@]}"; do
    path=$(cd "$moddir" && find kernel -name "$m.ko")
    if [ -z "$path" ] || [ "$(wc -l <<<"$path")" != 1 ]; then
        echo "test-guest.sh: no single $m.ko in $pkg" >&2
        exit 1
    fi
    # Every dependency in modules.dep must come earlier in MODULES.
    read -ra deps <<<"$(sed -n "s|^$path:||p" "$moddir/modules.dep")"
    for dep in "${deps[@]}"; do
        dep=$(basename "$dep" .ko)
        case $loaded in *" $dep "*) ;; *) echo "test-guest.sh: $m needs $dep first" >&2; exit 1 ;; esac
    done
    loaded="$loaded$m "
    cp "$moddir/$path" "$root/lib/modules/"
done

# The power button: busybox acpid maps the KEY_POWER input event to "PWRF" and runs /etc/acpi/PWRF/00000080.
cat >"$root/etc/acpid.conf" <<'EOF'
PWRF PWRF/00000080
EOF
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo STRATUS-GUEST-SHUTDOWN >/dev/console
umount /mnt/disk /mnt/config 2>/dev/null
sync
poweroff -f
EOF
chmod +x "$root/etc/acpi/PWRF/00000080"

# udhcpc's hook: apply the lease (the classless static routes, else the router) and print it on the console.
mkdir -p "$root/etc/udhcpc"
cat >"$root/etc/udhcpc/script" <<'EOF'
#!/bin/sh
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    if [ -n "$staticroutes" ]; then
        set -- $staticroutes
        while [ $# -ge 2 ]; do ip route replace "$1" via "$2" dev "$interface"; shift 2; done
    elif [ -n "$router" ]; then
        ip route replace default via "${router%% *}" dev "$interface"
    fi
    echo "STRATUS-IP: $interface $ip/$mask router=${router:-none} routes=${staticroutes:-none}" >/dev/console
    ;;
esac
EOF
chmod +x "$root/etc/udhcpc/script"
# The network part of the guest's report: a lease on each NIC, then pings to the stratus.ping= addresses.
cat >"$root/etc/network-report" <<'EOF'
#!/bin/sh
ip link set lo up   # its own addresses answer ping too
mkdir -p /tmp
for nic in /sys/class/net/*; do
    nic=${nic##*/}
    [ "$nic" = lo ] && continue
    ip link set "$nic" up
    udhcpc -i "$nic" -n -q -t 10 -T 2 -O staticroutes -s /etc/udhcpc/script >/dev/null 2>&1 \
        || echo "STRATUS-IP: $nic none"
done
# The metadata service as cloud-init's OpenStack datasource reaches it: 169.254.169.254 (routed by the lease to
# the network's metadata proxy), a few tries while the proxy comes up. busybox nc, not wget: a static busybox's
# wget looks "http" up in NSS (getservbyname), which a static glibc cannot load.
fetch() {
    # stdin stays open a moment: busybox nc stops reading the answer once its input ends
    { printf 'GET %s HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n' "$1"; sleep 1; } \
        | nc -w 5 169.254.169.254 80 2>/dev/null | tr -d '\r' >/tmp/md.http
    head -n 1 /tmp/md.http | grep -q ' 200 ' && sed '1,/^$/d' /tmp/md.http
}
# fetch_retry PATH: a few tries while the proxy comes up
fetch_retry() {
    i=0
    while [ $i -lt 10 ]; do
        fetch "$1" && return 0
        sleep 2
        i=$((i + 1))
    done
    return 1
}
if ip route | grep -q '^169.254.169.254'; then
    md=$(fetch_retry /openstack/latest/meta_data.json) || md=""
    uuid=$(echo "$md" | grep -o '"uuid": *"[^"]*"' | head -1 | cut -d'"' -f4)
    host=$(echo "$md" | grep -o '"hostname": *"[^"]*"' | head -1 | cut -d'"' -f4)
    fixed=$(fetch_retry /latest/meta-data/local-ipv4) || fixed=""
    echo "STRATUS-MD-NET: ${uuid:-none} ${host:-none} ${fixed:-none}"
    # the rest of what cloud-init reads there: the first key's MD5 fingerprint, the user data's first line, and
    # the first address of network_data.json
    blob=$(echo "$md" | grep -o '"data": *"[^"]*"' | head -1 | cut -d'"' -f4 | cut -d' ' -f2)
    key=none
    [ -n "$blob" ] && key=$(echo "$blob" | base64 -d | md5sum | cut -c1-32 | sed 's/../&:/g; s/:$//')
    userdata=$(fetch /openstack/latest/user_data | head -n 1) || userdata=""
    netdata=$(fetch /openstack/latest/network_data.json) || netdata=""
    netmac=$(echo "$netdata" | grep -o '"ethernet_mac_address": *"[^"]*"' | head -1 | cut -d'"' -f4)
    echo "STRATUS-MD-NET-KEY: ${key:-none}"
    echo "STRATUS-MD-NET-USERDATA: ${userdata:-none}"
    echo "STRATUS-MD-NET-MAC: ${netmac:-none}"
fi
targets=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^stratus\.ping=//p' | tr ',' ' ')
for t in $targets; do
    result=fail
    i=0
    while [ $i -lt 60 ]; do
        if ping -c 1 -W 2 "$t" >/dev/null 2>&1; then result=ok; break; fi
        i=$((i + 1))
    done
    echo "STRATUS-PING: $t $result"
done
echo STRATUS-PING-DONE
# Then it watches, for as long as it runs (about once a second): a NIC plugged later gets its lease like those
# above, one unplugged is reported, and each address of stratus.watch=A,B is pinged, each change of its answer
# printed (the first answer too).
watch=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^stratus\.watch=//p' | tr ',' ' ')
known=" "
for nic in /sys/class/net/*; do known="$known${nic##*/} "; done
while true; do
    for nic in /sys/class/net/*; do
        nic=${nic##*/}
        case "$known" in *" $nic "*) continue ;; esac
        known="$known$nic "
        echo "STRATUS-NET: $nic $(cat "/sys/class/net/$nic/address")"
        ip link set "$nic" up
        { udhcpc -i "$nic" -n -q -t 10 -T 2 -O staticroutes -s /etc/udhcpc/script >/dev/null 2>&1 \
            || echo "STRATUS-IP: $nic none"; } &
    done
    for nic in $known; do
        [ -e "/sys/class/net/$nic" ] && continue
        echo "STRATUS-NET-GONE: $nic"
        known=$(echo "$known" | sed "s/ $nic / /")
    done
    for t in $watch; do
        now=fail
        ping -c 1 -W 1 "$t" >/dev/null 2>&1 && now=ok
        [ "$now" = "$(cat "/tmp/reach-$t" 2>/dev/null)" ] && continue
        echo "$now" >"/tmp/reach-$t"
        echo "STRATUS-REACH: $t $now"
    done
    sleep 1
done
EOF
chmod +x "$root/etc/network-report"

cat >"$root/init" <<EOF
#!/bin/sh
# Stratus test guest (scripts/test-guest.sh): prints what it finds on the serial console, then waits for the
# ACPI power button.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
for m in ${MODULES[*]}; do
    insmod /lib/modules/\$m.ko
done
echo "STRATUS-CMDLINE: \$(cat /proc/cmdline)"
case " \$(cat /proc/cmdline) " in
*" stratus.tick "*) (n=0; while true; do n=\$((n + 1)); echo "STRATUS-TICK: \$n"; sleep 1; done) & ;;
esac
if [ -b /dev/vda ] && mount -t ext4 -o ro /dev/vda /mnt/disk; then
    echo "STRATUS-DISK: \$(cat /mnt/disk/stratus-disk)"
else
    echo "STRATUS-DISK: none"
fi
uuid=none
dev=\$(findfs LABEL=config-2 2>/dev/null) && mount -o ro "\$dev" /mnt/config \\
    && uuid=\$(grep -o '"uuid": *"[^"]*"' /mnt/config/openstack/latest/meta_data.json | head -1 | cut -d'"' -f4)
echo "STRATUS-METADATA: \${uuid:-none}"
# What cloud-init would take from the drive: the hostname, the first key (as its MD5 fingerprint, the key pair's
# 'fingerprint' in the API) and the first line of the user data.
host=none key=none userdata=none
md=/mnt/config/openstack/latest
if [ "\${uuid:-none}" != none ]; then
    host=\$(grep -o '"hostname": *"[^"]*"' \$md/meta_data.json | head -1 | cut -d'"' -f4)
    blob=\$(grep -o '"data": *"[^"]*"' \$md/meta_data.json | head -1 | cut -d'"' -f4 | cut -d' ' -f2)
    [ -n "\$blob" ] && key=\$(echo "\$blob" | base64 -d | md5sum | cut -c1-32 | sed 's/../&:/g; s/:\$//')
    [ -f \$md/user_data ] && userdata=\$(head -n 1 \$md/user_data)
fi
echo "STRATUS-HOSTNAME: \${host:-none}"
echo "STRATUS-KEY: \${key:-none}"
echo "STRATUS-USERDATA: \${userdata:-none}"
nics=0
for nic in /sys/class/net/*; do
    [ "\${nic##*/}" = lo ] && continue
    echo "STRATUS-NET: \${nic##*/} \$(cat "\$nic/address")"
    nics=\$((nics + 1))
done
[ \$nics -gt 0 ] || echo "STRATUS-NET: none"
[ \$nics -gt 0 ] && /etc/network-report &
acpid -f -c /etc/acpi -a /etc/acpid.conf -l /dev/null &
acpid=\$!
# Wait until acpid has the input devices open: only then can the power button be trusted.
i=0
until ls -l /proc/\$acpid/fd 2>/dev/null | grep -q /dev/input/event; do
    i=\$((i + 1))
    if [ \$i -gt 100 ] || ! kill -0 \$acpid 2>/dev/null; then
        echo "STRATUS-GUEST-FAILED: acpid is not listening"
        break
    fi
    sleep 0.1
done
[ \$i -gt 100 ] || ! kill -0 \$acpid 2>/dev/null || echo STRATUS-GUEST-BOOTED
while true; do
    sleep 3600
done
EOF
chmod +x "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -9) >initrd.img

# The root disk: an ext4 filesystem filled from a directory with mkfs.ext4 -d, then converted to qcow2.
mkdir disk
printf '%s' stratus-test-disk >disk/stratus-disk
truncate -s 64M disk.raw
mkfs.ext4 -q -F -L stratus-disk -d disk disk.raw
qemu-img convert -q -f raw -O qcow2 disk.raw disk.qcow2

cat >README <<EOF
Stratus test guest, built by scripts/test-guest.sh from $pkg and busybox-static.
Boot vmlinuz + initrd.img directly (machine 'pc', ACPI on) with the command line: $CMDLINE
The root disk (virtio, /dev/vda) is disk.qcow2: ext4 holding /stratus-disk = "stratus-test-disk".
On the serial console /init prints STRATUS-CMDLINE, STRATUS-DISK (the disk's file, or none), STRATUS-METADATA
(the uuid from the config drive labelled config-2, or none), STRATUS-HOSTNAME, STRATUS-KEY (fingerprint of the
first key) and STRATUS-USERDATA (first line) from the same drive, STRATUS-NET (each NIC and its MAC, or none), then
STRATUS-GUEST-BOOTED once acpid listens; in the background STRATUS-IP (each NIC's DHCP lease, by udhcpc) and
STRATUS-PING (each address of stratus.ping=A,B on the command line: ok or fail), then STRATUS-PING-DONE; then
it watches: STRATUS-NET and STRATUS-IP for a NIC plugged later, STRATUS-NET-GONE for one unplugged, STRATUS-REACH
(ok or fail) each time the answer of an address of stratus.watch=A,B changes.
With stratus.tick on the command line it prints STRATUS-TICK: <n> once a second, n counting from 1 at boot.
The ACPI power button prints STRATUS-GUEST-SHUTDOWN and powers off.
Modules loaded, in order: ${MODULES[*]}
EOF

rm -f "$out/.stamp"
cp "kernel/boot/vmlinuz-$kver" "$out/vmlinuz"
cp initrd.img disk.qcow2 README "$out/"
echo "$stamp" >"$out/.stamp"
echo "test guest ($pkg) in $out; kernel command line:"
echo "$CMDLINE"
