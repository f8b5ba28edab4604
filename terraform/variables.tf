#-- Project --#

variable "project_id" {
  description = "Google Cloud project that hosts the pipeline."
  type        = string
}

variable "region" {
  description = "Region of the functions, buckets, scheduler jobs, workflow and image repository. The raw bucket must be in the region of the Eventarc trigger that watches it."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Location of the Firestore database (a region or a multi-region such as nam5). It cannot be changed after creation."
  type        = string
  default     = "nam5"
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

#-- Deployment --#

variable "source_archive" {
  description = "Path of the function source archive `make package` builds (relative to terraform/, or absolute). Terraform uploads it as source/<sha256>.zip: new content redeploys every function, the same content none."
  type        = string
  default     = "../bin/source.zip"

  validation {
    condition     = fileexists(var.source_archive)
    error_message = "The function source archive is missing: run `make package` (or `make plan` / `make deploy`, which build it)."
  }
}

variable "state_bucket" {
  description = "Bucket holding the Terraform state (`make bootstrap` creates PROJECT-tfstate). The Cloud Build deployer account gets object access to it; empty: no grant."
  type        = string
  default     = ""
}

variable "api_propagation_seconds" {
  description = "Wait after enabling APIs, before anything calls them (apis.tf). Runs on the first apply and when the API list changes."
  type        = number
  default     = 60
}

variable "iam_propagation_seconds" {
  description = "Wait after the grants a deploy uses at once (build account, secret access, Eventarc), before the functions are deployed (iam.tf). IAM changes usually apply within 2 minutes and can take up to 7."
  type        = number
  default     = 120
}

variable "metric_propagation_seconds" {
  description = "Wait after creating log-based metrics, before alert policies that read them (monitoring.tf); Cloud Monitoring documents up to 10 minutes. It runs beside the function builds, so it rarely lengthens an apply."
  type        = number
  default     = 600
}

#-- Every function --#

variable "log_level" {
  description = "LOG_LEVEL of every function: debug, info, warn or error."
  type        = string
  default     = "info"
}

variable "trace_sample_ratio" {
  description = "TRACE_SAMPLE_RATIO of every function: the share of lesson traces exported to Cloud Trace (0 to 1)."
  type        = number
  default     = 1
}

variable "max_attempts" {
  description = "MAX_ATTEMPTS: how many times a stage is tried for one lesson version before it fails for good, with its reason."
  type        = number
  default     = 5
}

variable "pending_after" {
  description = "PENDING_AFTER: how long a step may wait with its event sent and no worker before the sweeper sends it again (the 'stuck' threshold of a waiting lesson; a running one is stuck when its stage's lease ends)."
  type        = string
  # Longer than the longest push ack deadline (600 s): a delivery hanging
  # on an instance that died is Pub/Sub's to send again first.
  default = "15m"
}

#-- Storage --#

variable "raw_retention_days" {
  description = "Days after which downloaded lesson videos (raw bucket, lessons/ prefix) are deleted. They can be downloaded again."
  type        = number
  default     = 30

  validation {
    condition     = var.raw_retention_days >= 1
    error_message = "raw_retention_days must be at least 1."
  }
}

#-- Detection --#

variable "detection_schedule" {
  description = "Cron schedule of the detector (Cloud Scheduler syntax)."
  type        = string
  default     = "0 */6 * * *"
}

variable "schedule_time_zone" {
  description = "Time zone the detection and sweep schedules are read in."
  type        = string
  default     = "Etc/UTC"
}

variable "detection_budget" {
  description = "DETECTION_BUDGET: how long one detection run may take (a Go duration). Keep it below the detector's timeout (540 s) and NOTIFY_RUN_WAIT."
  type        = string
  default     = "8m"
}

variable "hotmart_base_url" {
  description = "HOTMART_BASE_URL: https://developers.hotmart.com (production) or https://sandbox.hotmart.com (sandbox)."
  type        = string
  default     = "https://developers.hotmart.com"
}

variable "hotmart_token_url" {
  description = "HOTMART_TOKEN_URL: the Hotmart OAuth token endpoint."
  type        = string
  default     = "https://api-sec-vlc.hotmart.com/security/oauth/token"
}

variable "course_catalog" {
  description = "COURSE_CATALOG: Hotmart product id => its Club subdomain and school slug (a school of taxonomy/taxonomy.yaml)."
  type = map(object({
    subdomain = string
    school    = string
  }))
  default = {}
}

variable "media_manifest_uri" {
  description = "MEDIA_MANIFEST_URI of the detector and downloader: manifest mapping page ids to media URLs (https://, or gs:// in the raw bucket, which both functions may read). Empty: no manifest."
  type        = string
  default     = ""
}

variable "media_ingest_prefix" {
  description = "MEDIA_INGEST_PREFIX: prefix of the raw bucket where the producer drops master files named by product/module/page. Never under lessons/ (that prefix is deleted after raw_retention_days)."
  type        = string
  default     = "ingest"

  validation {
    condition     = !startswith(trimprefix(var.media_ingest_prefix, "/"), "lessons")
    error_message = "media_ingest_prefix must not be under lessons/: the lifecycle rule and the downloader's write access cover that prefix."
  }
}

#-- Sweep --#

variable "sweep_schedule" {
  description = "Cron schedule of the sweeper, which re-drives stalled work (every few minutes)."
  type        = string
  default     = "*/5 * * * *"
}

variable "sweep_batch" {
  description = "SWEEP_BATCH: lessons one sweep looks at, at most."
  type        = number
  default     = 200
}

#-- Download --#

variable "max_media_bytes" {
  description = "MAX_MEDIA_BYTES: the downloader refuses videos larger than this."
  type        = number
  default     = 21474836480
}

#-- Transcription --#

variable "speech_location" {
  description = "SPEECH_LOCATION: where the primary model runs (chirp_3: us or eu)."
  type        = string
  default     = "us"
}

variable "speech_model" {
  description = "SPEECH_MODEL: the primary Speech-to-Text v2 model."
  type        = string
  default     = "chirp_3"
}

variable "speech_fallback_model" {
  description = "SPEECH_FALLBACK_MODEL: the model a low-confidence transcript is made again with; \"none\" for no fallback."
  type        = string
  default     = "chirp_2"
}

variable "speech_fallback_location" {
  description = "SPEECH_FALLBACK_LOCATION: where the fallback model runs (chirp_2: us-central1, europe-west4, asia-southeast1)."
  type        = string
  default     = "us-central1"
}

variable "speech_processing_strategy" {
  description = "PROCESSING_STRATEGY: STANDARD, or DYNAMIC_BATCHING (cheaper, answered within 24 h; the workflow then polls for 25 h and the starter's PROCESS_LEASE covers it)."
  type        = string
  default     = "STANDARD"

  validation {
    condition     = contains(["STANDARD", "DYNAMIC_BATCHING"], var.speech_processing_strategy)
    error_message = "speech_processing_strategy must be STANDARD or DYNAMIC_BATCHING."
  }
}

variable "language" {
  description = "LANGUAGE: BCP-47 code of the courses' speech unless course_languages names another."
  type        = string
  default     = "es-ES"
}

variable "course_languages" {
  description = "COURSE_LANGUAGES: course id => BCP-47 code, for courses not in `language`."
  type        = map(string)
  default     = {}
}

variable "transcription_poll_seconds" {
  description = "POLL_SECONDS of the lesson-pipeline workflow: the wait between transcription polls. MAX_POLLS follows from it and the strategy."
  type        = number
  default     = 30

  validation {
    condition     = var.transcription_poll_seconds >= 5 && var.transcription_poll_seconds <= 3600
    error_message = "transcription_poll_seconds must be between 5 and 3600."
  }
}

#-- Analysis and enrichment --#

variable "analysis_enabled" {
  description = "ANALYSIS_ENABLED: false records the analyze stage skipped (no Gemini video analysis)."
  type        = bool
  default     = true
}

variable "gemini_model" {
  description = "GEMINI_MODEL of the analyzer and enricher."
  type        = string
  default     = "gemini-3.5-flash"
}

variable "gemini_location" {
  description = "GEMINI_LOCATION: the Vertex AI location Gemini is called in."
  type        = string
  default     = "global"
}

variable "embedding_model" {
  description = "EMBEDDING_MODEL: text-embedding-3-small or text-embedding-3-large."
  type        = string
  default     = "text-embedding-3-small"
}

variable "embedding_dimensions" {
  description = "EMBEDDING_DIMENSIONS of the enricher, and the dimension of the taxonomy's vector index (firestore.tf): the two must agree."
  type        = number
  default     = 1536

  validation {
    condition     = var.embedding_dimensions >= 1 && var.embedding_dimensions <= 2048
    error_message = "embedding_dimensions must be between 1 and 2048 (Firestore vector search)."
  }
}

variable "chunk_max_tokens" {
  description = "CHUNK_MAX_TOKENS of the enricher and syncer (the same value for both)."
  type        = number
  default     = 400
}

variable "chunk_overlap_tokens" {
  description = "CHUNK_OVERLAP_TOKENS of the enricher and syncer (the same value for both)."
  type        = number
  default     = 60
}

variable "club_lesson_url" {
  description = "HOTMART_CLUB_LESSON_URL: a lesson's link on Hotmart Club, from {subdomain}, {lessonId}, {courseId}, {moduleId}."
  type        = string
  default     = "https://{subdomain}.club.hotmart.com/lesson/{lessonId}"
}

variable "vector_store_name_prefix" {
  description = "VECTOR_STORE_NAME_PREFIX: a school's vector store is named prefix + school slug."
  type        = string
  default     = "coursekb-"
}

#-- Notification --#

variable "notify_slack" {
  description = "Deploy the SLACK_WEBHOOK_URL secret and give it to the notifier. Its value comes from slack_webhook_url on the apply that creates it. A switch of its own, not the value's presence: applies that carry no secret values (Cloud Build's) would otherwise remove it."
  type        = bool
  default     = false
}

variable "smtp_host" {
  description = "SMTP_HOST: e-mail notifications go through this server; empty: no e-mail."
  type        = string
  default     = ""
}

variable "smtp_port" {
  description = "SMTP_PORT: 465 speaks TLS from the start; others upgrade with STARTTLS."
  type        = number
  default     = 587
}

variable "smtp_user" {
  description = "SMTP_USER. Set, it also deploys the SMTP_PASSWORD secret (value from smtp_password on the apply that creates it)."
  type        = string
  default     = ""
}

variable "mail_from" {
  description = "MAIL_FROM of the notifier's e-mails."
  type        = string
  default     = ""
}

variable "mail_to" {
  description = "MAIL_TO: recipients of the notifier's e-mails."
  type        = list(string)
  default     = []
}

variable "notify_run_wait" {
  description = "NOTIFY_RUN_WAIT: how long a detection run's digest waits for the run to end. It must exceed detection_budget; Pub/Sub's redeliveries of lesson-events-notifier must cover it (pubsub.tf)."
  type        = string
  default     = "15m"
}

#-- Secret values --#

# Sensitive, and sent as write-only values: Terraform never keeps them in its
# state, and no output shows them (secrets.tf). Give them as TF_VAR_...
# environment variables on the apply that creates the secret versions (the
# first one, and a rotation). Later applies may leave them unset.

variable "hotmart_client_id" {
  description = "Value of the HOTMART_CLIENT_ID secret (detector)."
  type        = string
  sensitive   = true
  default     = null
}

variable "hotmart_client_secret" {
  description = "Value of the HOTMART_CLIENT_SECRET secret (detector)."
  type        = string
  sensitive   = true
  default     = null
}

variable "hotmart_basic_token" {
  description = "Value of the HOTMART_BASIC_TOKEN secret (detector)."
  type        = string
  sensitive   = true
  default     = null
}

variable "openai_api_key" {
  description = "Value of the OPENAI_API_KEY secret (enricher, syncer)."
  type        = string
  sensitive   = true
  default     = null
}

variable "slack_webhook_url" {
  description = "Value of the SLACK_WEBHOOK_URL secret (notifier), used when notify_slack is true."
  type        = string
  sensitive   = true
  default     = null
}

variable "smtp_password" {
  description = "Value of the SMTP_PASSWORD secret (notifier), used when smtp_user is set."
  type        = string
  sensitive   = true
  default     = null
}

variable "secret_value_versions" {
  description = "Environment variable name => a number to raise to send a new value (a rotation): its secret gets a new version, the functions that read it redeploy on it, and the old version is disabled. Unlisted secrets are at 1."
  type        = map(number)
  default     = {}
}

#-- Pub/Sub delivery --#

variable "max_delivery_attempts" {
  description = "Deliveries of one message before it goes to the subscription's dead-letter topic (Pub/Sub allows 5 to 100). Well above MAX_ATTEMPTS: a lesson fails by its stage's count, with its reason, and a dead letter is an alarm."
  type        = number
  default     = 15

  validation {
    condition     = var.max_delivery_attempts >= 2 * var.max_attempts && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be at least twice max_attempts, and at most 100."
  }
}

variable "retry_minimum_backoff" {
  description = "Shortest wait before Pub/Sub redelivers a nacked message."
  type        = string
  default     = "10s"
}

variable "retry_maximum_backoff" {
  description = "Longest wait before Pub/Sub redelivers a nacked message (at most 600s)."
  type        = string
  default     = "600s"
}

variable "dead_letter_retention" {
  description = "How long dead letters are kept by the subscriptions that read dead-letter topics."
  type        = string
  default     = "604800s"
}

#-- Monitoring --#

variable "alert_email" {
  description = "E-mail address the alert policies notify. Empty: no notification channel (incidents still open in Cloud Monitoring)."
  type        = string
  default     = ""
}

variable "oldest_unacked_alert_seconds" {
  description = "Alert when a subscription's oldest unacknowledged message is older than this (the downloader may hold one for its 30-minute lease)."
  type        = number
  default     = 3600
}

variable "function_error_rate_alert" {
  description = "Alert when this share of a function's requests over 15 minutes answer 5xx (retries included: a share, not a count)."
  type        = number
  default     = 0.2
}
