"""CUPS for printing at the booth, configured for privacy: what apply installs and what doctor checks.

Where a print can be while it exists (issue 17): in the session worker until CUPS has it, then in CUPS's
spool until the printer has it. So the spool (``RequestRoot``), the filters' scratch space (``TempDir``)
and the job cache (``CacheDir``: ``job.cache`` records job titles) are one size-capped RAM tmpfs of cupsd's
own — ``TemporaryFileSystem=`` in a drop-in for ``cups.service``, which systemd discards whenever cupsd
stops or crashes, so even a ``kill -9`` mid-job cannot leave a job behind to be printed again or found
later. ``PreserveJobFiles No`` and ``PreserveJobHistory No`` make CUPS delete a job's document and its
record the moment it ends; ``MaxJobs`` is small.

CUPS listens on its local socket only (no TCP, no web interface, no sharing), and its logs carry no file
names or titles: warnings only, no debug history dumped on a failed job (``LogDebugHistory 0``: those
messages list the filter's argv, title included), no page log (its default format records the title), and
the rest to syslog, i.e. the volatile journal. Every job the kiosk sends has the same title anyway.

The queue is created from Gutenprint's own driver (``lpadmin -m gutenprint.5.3://<model>/expert``), with
the page size every supported dye-sub prints natively (4×6 in) as its default.

``CupsPaths`` holds every path the two files name, so the tests start a real cupsd on exactly the
configuration the device gets, only under a temporary directory (``CupsPaths.under``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from appliance.config import KioskConfig

__all__ = [
    "CUPSD_CONF",
    "CUPS_DROPIN",
    "CUPS_FILES_CONF",
    "CUPS_PACKAGES",
    "CUPS_SERVICE",
    "MAX_JOBS",
    "PAGE_SIZE",
    "PRIVACY_DIRECTIVES",
    "SPOOL_MIB",
    "CupsPaths",
    "driver_uri",
    "queue_command",
    "render_cups_dropin",
    "render_cups_files_conf",
    "render_cupsd_conf",
    "spool_mount_options",
    "temp_dir_command",
]

CUPSD_CONF = PurePosixPath("/etc/cups/cupsd.conf")
CUPS_FILES_CONF = PurePosixPath("/etc/cups/cups-files.conf")
CUPS_SERVICE = "cups.service"
CUPS_DROPIN = PurePosixPath(f"/etc/systemd/system/{CUPS_SERVICE}.d/60-headshot-kiosk.conf")
# cups-daemon: the scheduler; cups-client: lpadmin/lpinfo; cups-filters: image -> raster (imagetoraster);
# printer-driver-gutenprint: the dye-sub driver (rastertogutenprint) and its USB backend.
CUPS_PACKAGES = ("cups-daemon", "cups-client", "cups-filters", "printer-driver-gutenprint")
SPOOL_MIB = 64  # a 4x6 job is ~0.5 MB of JPEG and ~7 MB of printer data; a few at once fit
MAX_JOBS = 4  # a kiosk prints one guest's print at a time; anything more is a runaway
MAX_JOB_SECONDS = 600  # CUPS cancels a job that runs longer (the kiosk gives up earlier)
PAGE_SIZE = "w288h432"  # Gutenprint's 4x6 in page (print_layout.PAGE_PIXELS at 300 dpi)
_HEADER = "# Rendered by `python -m provisioning apply`; local edits are replaced on the next apply.\n"
_LP_GID = 7  # Debian's and Ubuntu's static lp group (base-passwd), used when the root has no /etc/group

# What doctor requires, file by file: directive -> value (cupsd reads the last occurrence).
PRIVACY_DIRECTIVES: dict[PurePosixPath, dict[str, str]] = {
    CUPSD_CONF: {
        "PreserveJobFiles": "No",
        "PreserveJobHistory": "No",
        "MaxJobs": str(MAX_JOBS),
        "LogLevel": "warn",
        "LogDebugHistory": "0",
        "PageLogFormat": "",
        "WebInterface": "No",
        "Browsing": "No",
        "DefaultShared": "No",
    },
    CUPS_FILES_CONF: {"FileDevice": "No"},
}


@dataclass(frozen=True)
class CupsPaths:
    """Every path the CUPS configuration names. The defaults are the device's (Debian/Ubuntu layout, the
    spool on the drop-in's tmpfs); ``under`` moves all of them into a test directory."""

    server_root: str = "/etc/cups"
    spool: str = "/var/spool/cups"  # RequestRoot: the tmpfs mount point
    state_dir: str = "/run/cups"
    socket: str = "/run/cups/cups.sock"
    error_log: str = "syslog"
    access_log: str = "syslog"
    page_log: str = "syslog"
    file_device: bool = False  # tests print to a file; a kiosk never does
    user: str = "lp"
    group: str = "lp"

    @property
    def temp_dir(self) -> str:
        return f"{self.spool}/tmp"  # noqa: S108 - under the spool, not the shared /tmp

    @property
    def cache_dir(self) -> str:
        return f"{self.spool}/cache"

    @classmethod
    def under(cls, base: str, *, file_device: bool = True) -> CupsPaths:
        """The same layout below ``base`` (logs as files there, so a test can read them)."""
        return cls(
            server_root=f"{base}/etc",
            spool=f"{base}/spool",
            state_dir=f"{base}/run",
            socket=f"{base}/run/cups.sock",
            error_log=f"{base}/log/error_log",
            access_log=f"{base}/log/access_log",
            page_log=f"{base}/log/page_log",
            file_device=file_device,
        )


def render_cupsd_conf(paths: CupsPaths | None = None) -> str:
    """``/etc/cups/cupsd.conf``: local socket only, no web interface, jobs forgotten as soon as they end,
    logs without titles or file names."""
    p = paths or CupsPaths()
    lines = [
        _HEADER.rstrip("\n"),
        "# Printing at the booth (docs/PRINTING.md): jobs live in RAM only and are forgotten when they end.",
        "",
        "# --- logs: warnings only, nothing that names a job",
        "LogLevel warn",
        "# A failed job's last debug messages are logged whatever LogLevel says; they list the title.",
        "LogDebugHistory 0",
        "# An empty format turns the page log off (its default records each job's title).",
        "PageLogFormat",
        "AccessLogLevel config",
        "MaxLogSize 1m",
        "",
        "# --- reachable only through the local socket: no TCP, no web interface, no sharing",
        f"Listen {p.socket}",
        "Browsing No",
        "BrowseLocalProtocols none",
        "DefaultShared No",
        "WebInterface No",
        "",
        "# --- jobs: document and record deleted the moment a job ends; few at a time",
        "PreserveJobFiles No",
        "PreserveJobHistory No",
        f"MaxJobs {MAX_JOBS}",
        f"MaxJobTime {MAX_JOB_SECONDS}",
        "# A job the printer cannot take is ended, not kept for a retry (the kiosk reports it failed).",
        "ErrorPolicy abort-job",
        "DefaultPolicy default",
        "",
        "<Location />",
        "  Order allow,deny",
        "</Location>",
        "",
        "<Policy default>",
        "  JobPrivateAccess default",
        "  JobPrivateValues default",
        "  SubscriptionPrivateAccess default",
        "  SubscriptionPrivateValues default",
        "  <Limit Create-Job Print-Job Validate-Job>",
        "    Order deny,allow",
        "  </Limit>",
        "  # Only a job's owner (the kiosk's service user) may follow, change or end it.",
        "  <Limit Send-Document Hold-Job Release-Job Restart-Job Purge-Jobs Set-Job-Attributes "
        "Create-Job-Subscription Renew-Subscription Cancel-Subscription Get-Notifications Reprocess-Job "
        "Cancel-Current-Job Suspend-Current-Job Resume-Job Cancel-My-Jobs Close-Job CUPS-Move-Job "
        "Cancel-Job CUPS-Authenticate-Job>",
        "    Require user @OWNER @SYSTEM",
        "    Order deny,allow",
        "  </Limit>",
        "  # A job's document is never handed back, and nothing is fetched from a URI.",
        "  <Limit CUPS-Get-Document Print-URI Send-URI>",
        "    Order allow,deny",
        "  </Limit>",
        "  <Limit CUPS-Add-Modify-Printer CUPS-Delete-Printer CUPS-Add-Modify-Class CUPS-Delete-Class "
        "CUPS-Set-Default CUPS-Get-Devices Pause-Printer Resume-Printer Enable-Printer Disable-Printer "
        "Pause-Printer-After-Current-Job Hold-New-Jobs Release-Held-New-Jobs Deactivate-Printer "
        "Activate-Printer Restart-Printer Shutdown-Printer Startup-Printer Promote-Job Schedule-Job-After "
        "Cancel-Jobs CUPS-Accept-Jobs CUPS-Reject-Jobs>",
        "    AuthType Default",
        "    Require user @SYSTEM",
        "    Order deny,allow",
        "  </Limit>",
        "  <Limit All>",
        "    Order deny,allow",
        "  </Limit>",
        "</Policy>",
    ]
    return "\n".join(lines) + "\n"


def render_cups_files_conf(paths: CupsPaths | None = None) -> str:
    """``/etc/cups/cups-files.conf``: spool, scratch space and job cache on the RAM tmpfs; logs to syslog
    (the volatile journal); no file: device URIs."""
    p = paths or CupsPaths()
    lines = [
        _HEADER.rstrip("\n"),
        "SystemGroup root lpadmin",
        "PeerCred on",
        f"User {p.user}",
        f"Group {p.group}",
        f"ServerRoot {p.server_root}",
        f"StateDir {p.state_dir}",
        f"# On a RAM tmpfs of cupsd's own ({CUPS_DROPIN}): gone whenever cupsd stops or crashes.",
        f"RequestRoot {p.spool}",
        f"TempDir {p.temp_dir}",
        "# job.cache lists job titles: it lives on the tmpfs too.",
        f"CacheDir {p.cache_dir}",
        f"ErrorLog {p.error_log}",
        f"AccessLog {p.access_log}",
        f"PageLog {p.page_log}",
        f"FileDevice {'Yes' if p.file_device else 'No'}",
    ]
    return "\n".join(lines) + "\n"


def spool_mount_options(lp_gid: int | None, *, noswap: bool) -> str:
    """tmpfs(5) options of the spool: size-capped, root:lp 0710 as cupsd wants its RequestRoot, nothing
    executable. ``noswap`` only where the kernel has it (Linux >= 6.4; older kernels refuse the mount)."""
    options = [
        f"size={SPOOL_MIB}m",
        "mode=0710",
        "uid=0",
        f"gid={_LP_GID if lp_gid is None else lp_gid}",
        "nosuid",
        "nodev",
        "noexec",
    ]
    if noswap:
        options.append("noswap")
    return ",".join(options)


def temp_dir_command(paths: CupsPaths | None = None) -> tuple[str, ...]:
    """Makes ``TempDir`` on the fresh, empty tmpfs before cupsd starts: cupsd refuses to start without it
    (it creates ``CacheDir`` itself). Sticky and group-writable for the filters, as Debian ships it."""
    p = paths or CupsPaths()
    return ("/usr/bin/install", "-d", "-m", "1770", "-o", "root", "-g", p.group, p.temp_dir)


def render_cups_dropin(lp_gid: int | None, *, noswap: bool, paths: CupsPaths | None = None) -> str:
    """``cups.service.d/60-headshot-kiosk.conf``: cupsd's spool on a private tmpfs, no swap, no cores."""
    p = paths or CupsPaths()
    return (
        _HEADER
        + "[Service]\n"
        + "# The spool, TempDir and job cache: RAM of cupsd's own, discarded at every stop or crash, so a\n"
        + "# job never survives cupsd (a restarted cupsd finds nothing to resume).\n"
        + f"TemporaryFileSystem={p.spool}:{spool_mount_options(lp_gid, noswap=noswap)}\n"
        + f"ExecStartPre={' '.join(temp_dir_command(p))}\n"
        + "MemorySwapMax=0\n"
        + "LimitCORE=0\n"
    )


def driver_uri(config: KioskConfig) -> str:
    """The Gutenprint driver lpadmin builds the queue's PPD from (``lpinfo -m`` lists it)."""
    return f"gutenprint.5.3://{config.print.model}/expert"


def queue_command(config: KioskConfig, device_uri: str, *, socket: str | None = None) -> tuple[str, ...]:
    """``lpadmin`` creating (or updating) the kiosk's queue on ``device_uri`` from Gutenprint's driver,
    enabled and accepting, 4x6 by default, ending jobs it cannot print."""
    return (
        "lpadmin",
        "-h",
        socket or str(config.print.cups_socket),
        "-p",
        config.print.queue,
        "-E",
        "-v",
        device_uri,
        "-m",
        driver_uri(config),
        "-o",
        f"PageSize={PAGE_SIZE}",
        "-o",
        "printer-error-policy=abort-job",
    )
