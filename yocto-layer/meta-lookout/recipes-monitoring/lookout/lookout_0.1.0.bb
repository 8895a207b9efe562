SUMMARY = "On-device monitoring agent, a drop-in replacement for Mender Monitor"
SUMMARY:${PN}-demo = "Demo checks for lookout (available, not enabled)"
DESCRIPTION = "lookout follows log files, command output and systemd services, turns what it \
sees into CRITICAL/OK alerts and delivers them to the Mender server. It reads Mender \
Monitor's check files and config.sh and answers to mender-monitorctl."
HOMEPAGE = "https://github.com/lookout-agent/lookout"
SECTION = "admin"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

PV = "0.1.0+git"

# The project's repository; point SRC_URI:pn-lookout and SRCREV:pn-lookout at a mirror or a
# fork, or build a local checkout with externalsrc (see the layer's README).
SRC_URI = "git://github.com/lookout-agent/lookout.git;protocol=https;branch=main;destsuffix=lookout-src \
           file://mender-monitor.service \
           file://config.sh \
           file://monitor-lib.sh \
           "
# The layer lives in the project's repository, which cannot name its own commit: it follows the
# branch. Releases pin SRCREV; a product build pins it in its own configuration.
# nooelint: oelint.vars.autorev
SRCREV = "${AUTOREV}"

# scarthgap unpacks into WORKDIR; later releases into UNPACKDIR.
UNPACKDIR ??= "${WORKDIR}"
S = "${UNPACKDIR}/lookout-src"

inherit cargo systemd

require lookout-crates.inc

do_install:append() {
    ln -sf lookout ${D}${bindir}/mender-monitorctl
    ln -sf lookout ${D}${bindir}/mender-monitord

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${UNPACKDIR}/mender-monitor.service ${D}${systemd_system_unitdir}/mender-monitor.service

    install -d ${D}${datadir}/mender-monitor/config
    install -m 0644 ${UNPACKDIR}/config.sh ${D}${datadir}/mender-monitor/config/config.sh
    # Mender's `monitor_send_alert` for scripts that source it (calls `lookout send-alert`).
    install -d ${D}${datadir}/mender-monitor/lib
    install -m 0644 ${UNPACKDIR}/monitor-lib.sh ${D}${datadir}/mender-monitor/lib/monitor-lib.sh

    install -d ${D}${sysconfdir}/mender-monitor/monitor.d/available
    install -d ${D}${sysconfdir}/mender-monitor/monitor.d/enabled
    install -d ${D}${localstatedir}/lib/mender-monitor

    # The demo checks (package lookout-demo): available, not enabled, as Mender's
    # mender-monitor-demo ships them.
    for check in ${S}/src/install/demo/*.sh; do
        install -m 0644 "$check" ${D}${sysconfdir}/mender-monitor/monitor.d/available/
    done

    install -d ${D}${docdir}/lookout
    install -m 0644 ${S}/README.md ${D}${docdir}/lookout/README.md

    # On Mender images (meta-mender's mender-image override) the state lives on the data
    # partition, as Mender Monitor's does.
    if ${@'true' if 'mender-image' in d.getVar('OVERRIDES').split(':') else 'false'}; then
        rmdir ${D}${localstatedir}/lib/mender-monitor
        ln -sf /data/mender-monitor ${D}${localstatedir}/lib/mender-monitor
        install -d -m 0755 ${D}/data/mender-monitor
    fi
}

SYSTEMD_SERVICE:${PN} = "mender-monitor.service"

# The demo checks in a package of their own, as Mender's mender-monitor-demo: listed before
# ${PN}, so these files are its and not the agent's.
PACKAGES =+ "${PN}-demo"

FILES:${PN} += "${systemd_system_unitdir}/mender-monitor.service \
                ${datadir}/mender-monitor \
                ${sysconfdir}/mender-monitor \
                ${localstatedir}/lib/mender-monitor \
                /data/mender-monitor \
                "
FILES:${PN}-demo += "${sysconfdir}/mender-monitor/monitor.d/available/*.sh"
CONFFILES:${PN} = "${datadir}/mender-monitor/config/config.sh"

RDEPENDS:${PN}-demo = "${PN}"

# They take the place of the commercial mender-monitor and mender-monitor-demo packages.
RPROVIDES:${PN} = "mender-monitor"
RPROVIDES:${PN}-demo = "mender-monitor-demo"
RREPLACES:${PN} = "mender-monitor"
RREPLACES:${PN}-demo = "mender-monitor-demo"
RCONFLICTS:${PN} = "mender-monitor"
RCONFLICTS:${PN}-demo = "mender-monitor-demo"
