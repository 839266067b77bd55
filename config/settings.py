"""mashlab settings: everything that differs between instances comes from the environment.

`DATABASE_URL` (default: SQLite in the data folder) and `MEDIA_ROOT` are all it
takes to run a second, separate instance beside the first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import dj_database_url

from config.env import ConfigError, env_bool, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("MASHLAB_DATA_DIR", BASE_DIR / "data")

DEBUG = env_bool("DJANGO_DEBUG", False)
_DEV_SECRET = "dev-only-insecure-secret-key-set-DJANGO_SECRET_KEY-in-production"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", _DEV_SECRET)
if SECRET_KEY == _DEV_SECRET and env_bool("MASHLAB_PRODUCTION", False):
    raise ConfigError("DJANGO_SECRET_KEY must be set when MASHLAB_PRODUCTION=1")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "generation",
    "scoring",
    "listening",
    "analysis",
    "workbench",  # before django_tasks_db: its db_worker (reaps dead workers' jobs first) wins
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "config.middleware.RequestLimitsMiddleware",  # NUL bytes and oversized bodies, before anything reads them
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'mashlab.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers and one writer work side by side (gunicorn workers).
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    # Tests: a file, not Django's shared-cache in-memory database, whose table locks ignore the busy
    # timeout, so the live server's threads and the test's own writes ("database table is locked") wait
    # for each other instead of failing.
    DATABASES["default"]["TEST"] = {"NAME": str(env_path("MASHLAB_TEST_DB", Path(tempfile.gettempdir())
                                                          / f"mashlab-test-{os.getpid()}.sqlite3"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request bodies: every form here is small and only the upload page takes files. A body over this size is 413 on
# its Content-Length (config.middleware), before anything reads it; a multipart file part is refused (400).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MASHLAB_MAX_BODY_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FILES = 100  # files per request where a view takes them (the upload page)
# Every file part is refused (400) except on the upload page, which swaps in the temp-file handler.
FILE_UPLOAD_HANDLERS = ["config.uploads.RefuseFileUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024  # should a view ever take files: larger ones go to a temp file

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", DATA_DIR / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Audio, stems, renders and checkpoints live here, never in the database.
MEDIA_ROOT = env_path("MEDIA_ROOT", DATA_DIR / "media")
MEDIA_URL = "media/"

# Spleeter's weights folder ($MODEL_PATH, else DATA_DIR/pretrained_models) is decided in one place,
# generation.separation.model_root(), which runs without Django.

LOGIN_URL = "admin:login"

# Background jobs (workbench): Django's Tasks API through django-tasks, stored in the same database and run by
# `manage.py db_worker`. MASHLAB_TASKS_BACKEND may name another backend (e.g. the immediate one for debugging).
TASKS = {
    "default": {
        "BACKEND": env_str("MASHLAB_TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}
# A running job writes a heartbeat every MASHLAB_JOB_HEARTBEAT_S seconds; one silent for MASHLAB_JOB_STALE_S
# (or whose worker process on this host is gone) is marked failed by the reaper.
MASHLAB_JOB_HEARTBEAT_S = env_int("MASHLAB_JOB_HEARTBEAT_S", 5)
MASHLAB_JOB_STALE_S = env_int("MASHLAB_JOB_STALE_S", 60)
# A job whose MashupDB another running job writes goes back on the queue, deferred by this many seconds.
MASHLAB_JOB_REQUEUE_S = env_int("MASHLAB_JOB_REQUEUE_S", 3)
# Server folders the workbench may import audio from (colon-separated, like PATH); none by default.
MASHLAB_IMPORT_ROOTS = [Path(p).expanduser().resolve() for p in os.environ.get("MASHLAB_IMPORT_ROOTS", "").split(":")
                        if p.strip()]
# The largest audio file the workbench's upload page takes, in bytes (default 200 MiB).
MASHLAB_UPLOAD_MAX_FILE_BYTES = env_int("MASHLAB_UPLOAD_MAX_FILE_BYTES", 200 * 1024 * 1024)
# A running Dask scheduler (tcp://host:8786) for ingest, render and score (config.cluster); empty: a local cluster
# for --jobs N > 1, else serial. Its workers need MEDIA_ROOT, MASHLAB_DATA_DIR and MODEL_PATH on shared storage.
MASHLAB_DASK_SCHEDULER = env_str("MASHLAB_DASK_SCHEDULER", "")

# Production hardening: on when MASHLAB_PRODUCTION=1 (behind TLS).
if env_bool("MASHLAB_PRODUCTION", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("MASHLAB_LOG_LEVEL", "WARNING")},
    "loggers": {"django": {"level": env_str("MASHLAB_LOG_LEVEL", "WARNING")}},
}
