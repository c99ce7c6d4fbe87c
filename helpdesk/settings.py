"""Settings for the helpdesk, read from the environment and an optional .env file.

ENVIRONMENT (dev | test | staging | prod) picks safe defaults: only dev runs with DEBUG and
an insecure development key; every other environment refuses to start without SECRET_KEY and
ALLOWED_HOSTS, and prod turns on the HTTPS protections that `check --deploy` asks for.
Every setting read here is documented in .env.example.
"""

import os
from pathlib import Path

import dj_database_url
from decouple import AutoConfig, Config, Csv, RepositoryEnv
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# ENV_FILE names the configuration explicitly (a deployment's shared/.env); otherwise python-decouple
# looks for a .env next to the code. Real environment variables win over both.
_env_file = os.environ.get("ENV_FILE", "")
if _env_file and not Path(_env_file).is_file():
    raise ImproperlyConfigured(f"ENV_FILE points to {_env_file}, which is not a readable file.")
_env_beside_code = BASE_DIR / ".env"
if not _env_file and _env_beside_code.exists() and not os.access(_env_beside_code, os.R_OK):
    # e.g. a web server's own account reading a release's 0640 .env: say so, not a PermissionError
    raise ImproperlyConfigured(
        f"{_env_beside_code} exists but this process (uid {os.getuid()}) cannot read it: run the "
        "application as the deployment's user (mod_wsgi: WSGIDaemonProcess user= group=)."
    )
config = Config(RepositoryEnv(_env_file)) if _env_file else AutoConfig(search_path=str(BASE_DIR))

ENVIRONMENTS = ("dev", "test", "staging", "prod")
ENVIRONMENT = config("ENVIRONMENT", default="")
ENVIRONMENT_CONFIGURED = bool(ENVIRONMENT)  # said in ENV_FILE, .env or the environment (helpdesk/wsgi.py)
ENVIRONMENT = ENVIRONMENT or "dev"
if ENVIRONMENT not in ENVIRONMENTS:
    raise ImproperlyConfigured(f"ENVIRONMENT must be one of {', '.join(ENVIRONMENTS)}, not {ENVIRONMENT!r}.")
IS_DEV = ENVIRONMENT == "dev"
IS_PROD = ENVIRONMENT == "prod"

DEBUG = config("DEBUG", default=IS_DEV, cast=bool)
if DEBUG and not IS_DEV:
    raise ImproperlyConfigured(f"DEBUG=True is only allowed with ENVIRONMENT=dev (this is {ENVIRONMENT}).")

_DEV_SECRET_KEY = "django-insecure-dev-only-key-never-use-it-outside-a-developer-laptop"  # noqa: S105
SECRET_KEY = config("SECRET_KEY", default=_DEV_SECRET_KEY if IS_DEV else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(f"SECRET_KEY must be set when ENVIRONMENT={ENVIRONMENT}.")
if SECRET_KEY == _DEV_SECRET_KEY and not IS_DEV:
    raise ImproperlyConfigured("The development SECRET_KEY must not be used outside ENVIRONMENT=dev.")

ALLOWED_HOSTS = config("ALLOWED_HOSTS", default="localhost,127.0.0.1,[::1]" if IS_DEV else "", cast=Csv())
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(f"ALLOWED_HOSTS must be set when ENVIRONMENT={ENVIRONMENT}.")
CSRF_TRUSTED_ORIGINS = config("CSRF_TRUSTED_ORIGINS", default="", cast=Csv())

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",
    "corsheaders",
    "crm",
    "updater",
    "monitoring",
]

MIDDLEWARE = [
    # First: who the client is, behind a trusted reverse proxy (helpdesk/proxies.py)
    "helpdesk.proxies.TrustedProxyMiddleware",
    # Answers a dashboard's preflight before anything else may refuse it (only for MONITORING_CORS_*).
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before everything that touches the database: maintenance mode must answer without it.
    "updater.middleware.MaintenanceModeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout into a 429 response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "helpdesk.urls"
WSGI_APPLICATION = "helpdesk.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite next to the code unless DATABASE_URL says otherwise (mysql://user:pass@host:port/name).
DATABASES = {
    "default": dj_database_url.parse(
        config("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=config("DB_CONN_MAX_AGE", default=60, cast=int),
        conn_health_checks=True,
    )
}
# The same server and account, another database: how the updater points a release at the scratch copy
# it rehearses migrations on (updater/plan/rehearsal.py). Empty: the name in DATABASE_URL.
if config("DATABASE_NAME", default=""):
    DATABASES["default"]["NAME"] = config("DATABASE_NAME")
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            # Strict mode turns silent truncation into errors; READ COMMITTED is Django's recommendation.
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
            "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
            "isolation_level": "read committed",
        }
    )
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers and one writer work at once; the busy timeout waits out short write locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", "timeout": 20}
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses logins for a locked-out username + address before any password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = config("AXES_FAILURE_LIMIT", default=5, cast=int)
AXES_COOLOFF_TIME = config("AXES_COOLOFF_MINUTES", default=15, cast=int) / 60  # hours, as axes counts
# Lock the username *from that address*: a stranger cannot lock a real user out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "helpdesk.proxies.client_address"  # the client, also behind a trusted proxy
# Reverse proxies whose X-Forwarded-For is believed (addresses or CIDRs, e.g. 127.0.0.1 for a local
# Apache). Empty, the default: the header is ignored, whoever sends it.
TRUSTED_PROXIES = config("TRUSTED_PROXIES", default="", cast=Csv())
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/tickets/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = config("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", "English"), ("pl", "Polski")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = config("TIME_ZONE", default="Europe/Warsaw")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# Files browsers ask for at the site's root (favicon.ico), served by whitenoise as they are.
WHITENOISE_ROOT = BASE_DIR / "public"
STATIC_ROOT = Path(config("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "crm.storage.GroupFileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage",
        # Public by nature, and read by whoever serves them (a web server's account, too): not the
        # private modes of FILE_UPLOAD_* below, which would otherwise apply to them as well.
        "OPTIONS": {"file_permissions_mode": 0o644, "directory_permissions_mode": 0o755},
    },
}
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(config("MEDIA_ROOT", default=str(BASE_DIR / "media")))

# Uploaded files are customers' data: readable by the service's own group (backups, admins), by no one
# else, whatever the umask of the process serving them.
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
# The group those files and folders belong to; empty: the service's own primary group.
MEDIA_GROUP = config("MEDIA_GROUP", default="")

# Attachments: largest accepted upload, in bytes (10 MiB by default).
ATTACHMENT_MAX_BYTES = config("ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024, cast=int)

# Database backups go to the state folder's backups/ (updater/layout.py) unless BACKUP_DIR moves them.
BACKUP_DIR = config("BACKUP_DIR", default="")
# Off-site copies (restic): any restic repository; empty: none. The password is read from a file.
BACKUP_OFFSITE_REPOSITORY = config("BACKUP_OFFSITE_REPOSITORY", default="")
BACKUP_OFFSITE_PASSWORD_FILE = config("BACKUP_OFFSITE_PASSWORD_FILE", default="")
# For sftp: repositories, the ssh command restic runs (its key, port, known hosts), e.g.
# "ssh -i /etc/helpdesk/backup_key -p 2222 backup@vault -s sftp".
BACKUP_OFFSITE_SFTP_COMMAND = config("BACKUP_OFFSITE_SFTP_COMMAND", default="")
# Retention of off-site snapshots (restic forget --keep-*); 0 leaves that period out.
BACKUP_OFFSITE_KEEP_HOURLY = config("BACKUP_OFFSITE_KEEP_HOURLY", default=24, cast=int)
BACKUP_OFFSITE_KEEP_DAILY = config("BACKUP_OFFSITE_KEEP_DAILY", default=14, cast=int)
BACKUP_OFFSITE_KEEP_WEEKLY = config("BACKUP_OFFSITE_KEEP_WEEKLY", default=8, cast=int)
BACKUP_OFFSITE_KEEP_MONTHLY = config("BACKUP_OFFSITE_KEEP_MONTHLY", default=12, cast=int)
# Share of the repository's data read back by each shipment's check (restic check --read-data-subset).
BACKUP_OFFSITE_CHECK_SUBSET = config("BACKUP_OFFSITE_CHECK_SUBSET", default="5%")
BACKUP_OFFSITE_TIMEOUT = config("BACKUP_OFFSITE_TIMEOUT", default=3600, cast=int)

# The updater. Every path it uses is owned by updater/layout.py: a deployment's shared/ (the root is
# UPDATER_ROOT, or found from the code's path), else UPDATER_STATE_DIR (default var/ beside the code).
UPDATER_ROOT = config("UPDATER_ROOT", default="")
UPDATER_STATE_DIR = config("UPDATER_STATE_DIR", default="")
# The maintenance flag every server of a fleet sees, on their shared store (default: shared/maintenance).
UPDATER_MAINTENANCE_FLAG = config("UPDATER_MAINTENANCE_FLAG", default="")
MAINTENANCE_RETRY_AFTER = config("MAINTENANCE_RETRY_AFTER", default=120, cast=int)
UPDATER_WHEELHOUSE = config("UPDATER_WHEELHOUSE", default="")
# Rehearse pending migrations on a scratch copy of the live database before touching it (needs room
# for a copy; on MariaDB the right to create <name>_rehearsal). Off for databases too big to copy.
UPDATER_REHEARSE = config("UPDATER_REHEARSE", default=True, cast=bool)
# A rehearsal copies the newest verified backup of the current schema when it is younger than this
# (seconds), instead of dumping the live database; 0: always a fresh copy of the live database.
UPDATER_REHEARSAL_BACKUP_AGE = config("UPDATER_REHEARSAL_BACKUP_AGE", default=3600, cast=int)
# Run migrations the release before can live with (updater/plan/migration_kinds.py) with the site up:
# online ones before the switch, contract ones after verify. Off: every migration under maintenance.
UPDATER_ONLINE_MIGRATIONS = config("UPDATER_ONLINE_MIGRATIONS", default=True, cast=bool)
UPDATER_RELOAD_COMMAND = config("UPDATER_RELOAD_COMMAND", default="")
UPDATER_RELOAD_PIDFILE = config("UPDATER_RELOAD_PIDFILE", default="")
UPDATER_HEALTH_URL = config("UPDATER_HEALTH_URL", default="")
UPDATER_HEALTH_TIMEOUT = config("UPDATER_HEALTH_TIMEOUT", default=60, cast=int)
# Before dropping what the previous release reads, the updater waits for that release's workers to be
# gone: seen through UPDATER_RELOAD_PIDFILE, or else assumed after this many seconds (gunicorn's
# graceful_timeout is 30).
UPDATER_DRAIN_SECONDS = config("UPDATER_DRAIN_SECONDS", default=35, cast=int)
UPDATER_KEEP_RELEASES = config("UPDATER_KEEP_RELEASES", default=5, cast=int)
UPDATER_REQUIRE_SIGNED_TAGS = config("UPDATER_REQUIRE_SIGNED_TAGS", default=False, cast=bool)
# Who may sign releases: an SSH allowed-signers file and/or a GnuPG home holding the trusted keys.
UPDATER_ALLOWED_SIGNERS = config("UPDATER_ALLOWED_SIGNERS", default="")
UPDATER_GNUPGHOME = config("UPDATER_GNUPGHOME", default="")
UPDATER_MIN_FREE_BYTES = config("UPDATER_MIN_FREE_BYTES", default=1024**3, cast=int)

# Promotion (DEV -> TEST -> STAGING -> PROD, updater/plan/promotion.py): this environment's predecessor,
# the URL of its /monitoring/releases/. Empty: no predecessor (dev, or the first in the chain).
UPDATER_PROMOTION_SOURCE = config("UPDATER_PROMOTION_SOURCE", default="")
# The bearer token the predecessor accepts (its PROMOTION_TOKEN).
UPDATER_PROMOTION_SOURCE_TOKEN = config("UPDATER_PROMOTION_SOURCE_TOKEN", default="")
# The key the predecessor signs answers with (its PROMOTION_SIGNING_KEY); set, unsigned ones are refused.
UPDATER_PROMOTION_SOURCE_KEY = config("UPDATER_PROMOTION_SOURCE_KEY", default="")
# A CA bundle or the predecessor's own certificate: an https predecessor is trusted only with it.
UPDATER_PROMOTION_SOURCE_CA = config("UPDATER_PROMOTION_SOURCE_CA", default="")
UPDATER_PROMOTION_TIMEOUT = config("UPDATER_PROMOTION_TIMEOUT", default=10.0, cast=float)
# How long a release must have run healthy on the predecessor, by update class (hours; never 0).
UPDATER_SOAK_HOURS_CRITICAL = config("UPDATER_SOAK_HOURS_CRITICAL", default=1.0, cast=float)
UPDATER_SOAK_HOURS_IMPORTANT = config("UPDATER_SOAK_HOURS_IMPORTANT", default=24.0, cast=float)
UPDATER_SOAK_HOURS_ROUTINE = config("UPDATER_SOAK_HOURS_ROUTINE", default=48.0, cast=float)
# refresh_from_backup --anonymize: agents' accounts are kept (they log in as before) or anonymized too.
REFRESH_AGENTS = config("REFRESH_AGENTS", default="keep")
# What this environment attests to its successor: the token it must send and the key answers are signed with.
PROMOTION_TOKEN = config("PROMOTION_TOKEN", default="")
PROMOTION_SIGNING_KEY = config("PROMOTION_SIGNING_KEY", default="")

# Update classes and their windows (the handbook's "Okna Czasowe"); see updater/plan/policy.py for the format.
UPDATE_TIME_ZONE = config("UPDATE_TIME_ZONE", default=TIME_ZONE)
UPDATE_WINDOW_CRITICAL = config("UPDATE_WINDOW_CRITICAL", default="always")
UPDATE_WINDOW_IMPORTANT = config("UPDATE_WINDOW_IMPORTANT", default="Sat,Sun 22:00-06:00")
UPDATE_WINDOW_ROUTINE = config("UPDATE_WINDOW_ROUTINE", default="Sun 02:00-06:00")

# After-run notifications (updater/notify/channels.py); every outbound call is bounded by NOTIFY_TIMEOUT.
NOTIFY_EMAILS = config(
    "NOTIFY_EMAILS", default="", cast=lambda v: [a.strip() for a in v.split(",") if a.strip()]
)
NOTIFY_MODE = config("NOTIFY_MODE", default="on-change")  # always | on-change | only-on-error
NOTIFY_TIMEOUT = config("NOTIFY_TIMEOUT", default=5.0, cast=float)
SLACK_WEBHOOK_URL = config("SLACK_WEBHOOK_URL", default="")
STATUS_PAGE_KIND = config("STATUS_PAGE_KIND", default="statuspage")  # statuspage | cachet
STATUS_PAGE_URL = config("STATUS_PAGE_URL", default="")
STATUS_PAGE_TOKEN = config("STATUS_PAGE_TOKEN", default="")

# Monitoring (monitoring/): who sees details, what is probed, thresholds (the handbook's defaults), alerts.
MONITORING_TOKEN = config("MONITORING_TOKEN", default="")
MONITORING_ALLOWED_IPS = config("MONITORING_ALLOWED_IPS", default="", cast=Csv())
# Browser dashboards on other origins that may read the probes, status and metrics (django-cors-headers;
# nothing else of the site is shared, and no cookie: they send MONITORING_TOKEN as a bearer token).
CORS_ALLOWED_ORIGINS = config("MONITORING_CORS_ORIGINS", default="", cast=Csv())
CORS_URLS_REGEX = r"^/monitoring/(health|ready|status|metrics)/?$"
CORS_ALLOW_METHODS = ("GET", "OPTIONS")
CORS_ALLOW_HEADERS = ("authorization",)
CORS_ALLOW_CREDENTIALS = False
CORS_PREFLIGHT_MAX_AGE = 3600
MONITORED_SERVICES = config("MONITORED_SERVICES", default="", cast=Csv())
MONITORED_DISKS = config("MONITORED_DISKS", default="/", cast=Csv())
MONITORED_ERROR_LOGS = config("MONITORED_ERROR_LOGS", default="", cast=Csv())
MONITORING_CACHE_SECONDS = config("MONITORING_CACHE_SECONDS", default=30, cast=int)
MONITORING_STALE_SECONDS = config("MONITORING_STALE_SECONDS", default=180, cast=int)
DISK_WARN_PERCENT = config("DISK_WARN_PERCENT", default=80.0, cast=float)
DISK_CRIT_PERCENT = config("DISK_CRIT_PERCENT", default=90.0, cast=float)
MEMORY_WARN_PERCENT = config("MEMORY_WARN_PERCENT", default=85.0, cast=float)
MEMORY_CRIT_PERCENT = config("MEMORY_CRIT_PERCENT", default=95.0, cast=float)
LOAD_WARN_PER_CORE = config("LOAD_WARN_PER_CORE", default=1.5, cast=float)
LOAD_CRIT_PER_CORE = config("LOAD_CRIT_PER_CORE", default=3.0, cast=float)
DB_LATENCY_WARN_MS = config("DB_LATENCY_WARN_MS", default=100.0, cast=float)
DB_LATENCY_CRIT_MS = config("DB_LATENCY_CRIT_MS", default=1000.0, cast=float)
# Scheduled backups (backup_database --scheduled, run hourly by a timer or cron): every 4 hours in
# prod and daily elsewhere, as the handbook says; each keeps BACKUP_KEEP sets (a week by default).
BACKUP_INTERVAL_HOURS = config("BACKUP_INTERVAL_HOURS", default=4.0 if IS_PROD else 24.0, cast=float)
BACKUP_KEEP = config("BACKUP_KEEP", default=max(1, round(7 * 24 / BACKUP_INTERVAL_HOURS)), cast=int)
# The newest backup's age warns after one missed run (plus 2 h) and fails after two.
BACKUP_WARN_HOURS = config("BACKUP_WARN_HOURS", default=BACKUP_INTERVAL_HOURS + 2, cast=float)
BACKUP_CRIT_HOURS = config("BACKUP_CRIT_HOURS", default=2 * BACKUP_INTERVAL_HOURS + 2, cast=float)
OFFSITE_BACKUP_WARN_HOURS = config("OFFSITE_BACKUP_WARN_HOURS", default=BACKUP_WARN_HOURS, cast=float)
OFFSITE_BACKUP_CRIT_HOURS = config("OFFSITE_BACKUP_CRIT_HOURS", default=BACKUP_CRIT_HOURS, cast=float)
ERROR_LOG_WARN_LINES = config("ERROR_LOG_WARN_LINES", default=10, cast=int)
ERROR_LOG_CRIT_LINES = config("ERROR_LOG_CRIT_LINES", default=100, cast=int)
ALERT_CONSECUTIVE = config("ALERT_CONSECUTIVE", default=3, cast=int)
ALERT_HYSTERESIS = config("ALERT_HYSTERESIS", default=5.0, cast=float)
ALERT_REPEAT_MINUTES = config("ALERT_REPEAT_MINUTES", default=240, cast=int)
ALERT_REPEAT_CRITICAL_MINUTES = config("ALERT_REPEAT_CRITICAL_MINUTES", default=60, cast=int)
ALERT_EMAILS = config("ALERT_EMAILS", default="", cast=Csv())

# Operating-system updates (updater/system/system_update.py).
SYSTEM_APT_CONFIG = config("SYSTEM_APT_CONFIG", default="")
SYSTEM_UPDATE_TIMEOUT = config("SYSTEM_UPDATE_TIMEOUT", default=3600, cast=int)
SYSTEM_ETC_DIR = config("SYSTEM_ETC_DIR", default="/etc")
SYSTEM_IMPORTANT_PACKAGES = config(
    "SYSTEM_IMPORTANT_PACKAGES",
    default="apache2*,libapache2-mod-*,nginx*,mariadb-*,mysql-*,galera-*,postgresql*,python3*,libpython3*",
    cast=Csv(),
)
SYSTEM_REBOOT_FLAG = config("SYSTEM_REBOOT_FLAG", default="/var/run/reboot-required")

TICKETS_PER_PAGE = 25
REST_FRAMEWORK = {
    # Token first: an unauthenticated call then gets 401 with WWW-Authenticate, not a bare 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's own JSON parser answers deeply nested JSON with a 500 (RecursionError)
    "DEFAULT_PARSER_CLASSES": [
        "crm.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # No DEFAULT_PAGINATION_CLASS / PAGE_SIZE: the ticket list's pages (crm/api.py) set their own, and
    # DRF's system check would otherwise import all of DRF into every management command.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
}

# HTTPS protections: on by default in prod, each one overridable (e.g. behind a TLS-terminating proxy).
HTTPS = config("HTTPS", default=IS_PROD, cast=bool)
SECURE_SSL_REDIRECT = config("SECURE_SSL_REDIRECT", default=HTTPS, cast=bool)
# Probes from the load balancer and the updater talk plain HTTP on the loopback.
SECURE_REDIRECT_EXEMPT = [r"^monitoring/"]
SESSION_COOKIE_SECURE = config("SESSION_COOKIE_SECURE", default=HTTPS, cast=bool)
CSRF_COOKIE_SECURE = config("CSRF_COOKIE_SECURE", default=HTTPS, cast=bool)
SECURE_HSTS_SECONDS = config("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0, cast=int)
SECURE_HSTS_INCLUDE_SUBDOMAINS = config("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS, cast=bool)
SECURE_HSTS_PRELOAD = config("SECURE_HSTS_PRELOAD", default=HTTPS, cast=bool)
if config("SECURE_PROXY_SSL_HEADER", default=False, cast=bool):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Email: console in dev so nothing leaves a laptop; SMTP elsewhere.
EMAIL_BACKEND = config(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if IS_DEV
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = config("EMAIL_HOST", default="localhost")
EMAIL_PORT = config("EMAIL_PORT", default=25, cast=int)
EMAIL_HOST_USER = config("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = config("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = config("EMAIL_USE_TLS", default=False, cast=bool)
EMAIL_TIMEOUT = config("EMAIL_TIMEOUT", default=10, cast=int)
DEFAULT_FROM_EMAIL = config("DEFAULT_FROM_EMAIL", default="helpdesk@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Tickets by e-mail (crm/intake.py, receive_mail): the largest message taken, and what becomes of mail
# from unknown senders (empty: refused; an organization's name: they become its customers).
INTAKE_MAX_BYTES = config("INTAKE_MAX_BYTES", default=25 * 1024 * 1024, cast=int)
INTAKE_UNKNOWN_SENDER_ORGANIZATION = config("INTAKE_UNKNOWN_SENDER_ORGANIZATION", default="")
# receive_mail --imap: the mailbox to poll (its password in a 0600 file, never in the environment).
INTAKE_IMAP_HOST = config("INTAKE_IMAP_HOST", default="")
INTAKE_IMAP_PORT = config("INTAKE_IMAP_PORT", default=993, cast=int)
INTAKE_IMAP_SSL = config("INTAKE_IMAP_SSL", default=True, cast=bool)
INTAKE_IMAP_USER = config("INTAKE_IMAP_USER", default="")
INTAKE_IMAP_PASSWORD_FILE = config("INTAKE_IMAP_PASSWORD_FILE", default="")
INTAKE_IMAP_FOLDER = config("INTAKE_IMAP_FOLDER", default="INBOX")
# receive_mail --pop3: the same for a POP3 mailbox (each message is deleted once handled).
INTAKE_POP3_HOST = config("INTAKE_POP3_HOST", default="")
INTAKE_POP3_PORT = config("INTAKE_POP3_PORT", default=995, cast=int)
INTAKE_POP3_SSL = config("INTAKE_POP3_SSL", default=True, cast=bool)
INTAKE_POP3_USER = config("INTAKE_POP3_USER", default="")
INTAKE_POP3_PASSWORD_FILE = config("INTAKE_POP3_PASSWORD_FILE", default="")
INTAKE_TIMEOUT = config("INTAKE_TIMEOUT", default=30, cast=int)

# Due dates (crm/due_dates.py): hours to the first public answer and to resolution, by priority; counted
# only inside BUSINESS_HOURS when set (e.g. "Mon-Fri 08:00-16:00" in TIME_ZONE; empty: around the clock).
DUE_RESPONSE_HOURS = config("DUE_RESPONSE_HOURS", default="urgent=1,high=4,normal=8,low=24")
DUE_RESOLUTION_HOURS = config("DUE_RESOLUTION_HOURS", default="urgent=4,high=24,normal=72,low=168")
BUSINESS_HOURS = config("BUSINESS_HOURS", default="")
# From this many overdue tickets the status page warns (and check_system alerts); 0: shown, never alerts.
OVERDUE_WARN_TICKETS = config("OVERDUE_WARN_TICKETS", default=0, cast=int)

# Mail about tickets (crm/notifications.py, crm/outbox.py).
SITE_URL = config("SITE_URL", default="http://localhost:8000")  # links in mails point here
# Replies go to <local>+<signed token>@<domain> of this address (default: DEFAULT_FROM_EMAIL).
HELPDESK_REPLY_ADDRESS = config("HELPDESK_REPLY_ADDRESS", default="")
REPLY_TOKEN_MAX_AGE_DAYS = config("REPLY_TOKEN_MAX_AGE_DAYS", default=90, cast=int)
# send_notifications: tries per mail before it is a dead letter; the wait doubles from a minute to an hour.
NOTIFY_OUTBOX_MAX_ATTEMPTS = config("NOTIFY_OUTBOX_MAX_ATTEMPTS", default=10, cast=int)
NOTIFY_OUTBOX_BATCH = config("NOTIFY_OUTBOX_BATCH", default=500, cast=int)
# A short-lived thread sends right after a ticket write (dev has no timer running send_notifications).
NOTIFY_OUTBOX_THREAD = config("NOTIFY_OUTBOX_THREAD", default=IS_DEV, cast=bool)
OUTBOX_WARN_MINUTES = config("OUTBOX_WARN_MINUTES", default=15, cast=float)
OUTBOX_CRIT_MINUTES = config("OUTBOX_CRIT_MINUTES", default=60, cast=float)

# Logging: human-readable on the console; in prod also one JSON object a line in a rotating file,
# so that check_system can count errors by level and time without guessing at a format.
LOG_LEVEL = config("LOG_LEVEL", default="DEBUG" if DEBUG else "INFO")
LOG_FILE = config("LOG_FILE", default=str(BASE_DIR / "logs" / "helpdesk.log") if IS_PROD else "")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "console": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "helpdesk.log_format.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "console"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.utils.autoreload": {"level": "WARNING"},
        "axes": {"level": "INFO"},
    },
}
if LOG_FILE:
    Path(LOG_FILE).parent.mkdir(parents=True, exist_ok=True)
    LOGGING["handlers"]["file"] = {
        "class": "helpdesk.log_files.PrivateRotatingFileHandler",  # 0640, not world-readable
        "filename": LOG_FILE,
        "maxBytes": config("LOG_FILE_MAX_BYTES", default=10 * 1024 * 1024, cast=int),
        "backupCount": config("LOG_FILE_BACKUPS", default=5, cast=int),
        "formatter": "json",
        "encoding": "utf-8",
    }
    LOGGING["root"]["handlers"].append("file")
