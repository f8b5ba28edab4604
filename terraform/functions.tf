#-- Function specs --#

# Every function of the pipeline is one entry of local.functions, and every
# resource of a function follows from its entry: its runtime and trigger
# identities, its Cloud Scheduler job, its push subscriptions and their
# dead-letter topics, the Eventarc trigger, and its grants. The root package
# (functions.go) imports every function package, so one source archive
# deploys every function, each with its own entry point.
#
# An entry:
#   description, entry_point (the name the Go package registers),
#   memory, cpu (null: Cloud Run's default for the memory), timeout,
#   max_instances, concurrency
#   schedule       null, or { job, cron, retry_count }: an HTTP function Cloud
#                  Scheduler calls with OIDC (scheduler.tf)
#   workflow       true: an HTTP function the lesson-pipeline workflow calls
#                  with OIDC; the workflow reads its URL from <NAME>_URL
#                  (workflows.tf)
#   storage        true: Eventarc delivers google.cloud.storage.object.v1.finalized
#                  of the raw bucket (its subscription, made by Eventarc, has
#                  no dead-letter policy)
#   subscriptions  push subscriptions of ours (pubsub.tf), each
#                  { topic, filter (null: all), max_attempts (null:
#                  var.max_delivery_attempts), dead_letter (bool) }, named
#                  <topic>-<function>; with dead_letter, its dead-letter topic
#                  is <topic>-<function>-dlq
#   dead_letters   true: also a push subscription, without a dead-letter
#                  policy, on every other function's dead-letter topics
#   env            plain environment (beside local.common_env)
#   secrets        environment variables filled from Secret Manager (secrets.tf)
#   publishes      topics the function may publish to, and no others
#   buckets        [{ bucket (raw, artifacts), role, prefix (null: the whole
#                  bucket; else an IAM condition on that object prefix) }]
#   roles          other project roles, each with its docs link beside it
#
# Timeouts: an HTTP function may run 3600 s, one with an Eventarc trigger
# 540 s; Pub/Sub waits at most 600 s for a push answer (pubsub.tf).
locals {
  # Names the code and the specs share (shared/events; DESIGN.md section 3).
  topic_discovered = "lesson-discovered"
  topic_downloaded = "lesson-downloaded"
  topic_processed  = "lesson-processed"
  topic_enriched   = "lesson-enriched"
  topic_events     = "lesson-events"
  topic_replay     = "lesson-replay"
  # What an outbox may hold for any lesson: a writer that flushes every
  # lesson's outbox (the detector's run, the sweeper) or re-emits any step's
  # event (the replayer) needs all of them (shared/relay, lessonstate.TopicFor).
  outbox_topics = [local.topic_discovered, local.topic_downloaded, local.topic_processed, local.topic_enriched, local.topic_events]

  # IAM condition prefix of the downloads and everything derived from them:
  # lessons/{lessonId}/v{version}/... (shared/artifact), in both buckets.
  lessons_prefix = "lessons/"

  functions = {
    detector = {
      description   = "Reads the course structure from Hotmart and emits lesson-discovered events."
      entry_point   = "Detector"
      memory        = "512Mi"
      cpu           = null
      timeout       = 540 # DETECTION_BUDGET (8m) fits inside, with room to record the run.
      max_instances = 1   # One detection run at a time.
      concurrency   = 1
      schedule = {
        job         = "detection"
        cron        = var.detection_schedule
        retry_count = 1 # functions/detector: only 5xx (a fault a retry may fix) is retried.
      }
      workflow      = false
      storage       = false
      subscriptions = []
      dead_letters  = false
      env = {
        RAW_BUCKET          = google_storage_bucket.raw.name
        HOTMART_BASE_URL    = var.hotmart_base_url
        HOTMART_TOKEN_URL   = var.hotmart_token_url
        COURSE_CATALOG      = jsonencode(var.course_catalog)
        MEDIA_MANIFEST_URI  = var.media_manifest_uri
        MEDIA_INGEST_PREFIX = var.media_ingest_prefix
        DETECTION_BUDGET    = var.detection_budget
      }
      secrets = ["HOTMART_CLIENT_ID", "HOTMART_CLIENT_SECRET", "HOTMART_BASIC_TOKEN"]
      # Its own events go to lesson-discovered, lesson-processed (a
      # title-only change skips to enrich) and lesson-events (removed); each
      # run first flushes every lesson's outbox, whatever step queued it.
      publishes = local.outbox_topics
      buckets = [
        # Lists the ingest prefix and reads a gs:// media manifest.
        { bucket = "raw", role = "roles/storage.objectViewer", prefix = null },
      ]
      roles = []
    }

    downloader = {
      description = "Streams a lesson's video into the raw bucket."
      entry_point = "Downloader"
      memory      = "512Mi"
      cpu         = null
      # DOWNLOAD_LEASE is this (30m). Pub/Sub waits at most 600s for the
      # answer; a redelivery during a longer download finds the live lease
      # and is acknowledged.
      timeout       = 1800
      max_instances = 10
      concurrency   = 1
      schedule      = null
      workflow      = false
      storage       = false
      subscriptions = [
        { topic = local.topic_discovered, filter = null, max_attempts = null, dead_letter = true },
      ]
      dead_letters = false
      env = {
        RAW_BUCKET         = google_storage_bucket.raw.name
        MAX_MEDIA_BYTES    = tostring(var.max_media_bytes)
        MEDIA_MANIFEST_URI = var.media_manifest_uri
        DOWNLOAD_LEASE     = "1800s"
      }
      secrets   = []
      publishes = [local.topic_events] # A download failed for good.
      buckets = [
        # Reads the ingest masters and the manifest anywhere in the bucket...
        { bucket = "raw", role = "roles/storage.objectViewer", prefix = null },
        # ...and writes (and overwrites) under lessons/ only: the ingest
        # masters are the producer's only copy.
        { bucket = "raw", role = "roles/storage.objectUser", prefix = local.lessons_prefix },
      ]
      roles = []
    }

    sweeper = {
      description   = "Re-drives stalled work whose lease expired or whose event waited too long; fails what is out of attempts."
      entry_point   = "Sweeper"
      memory        = "256Mi"
      cpu           = null
      timeout       = 300
      max_instances = 1 # One sweep at a time.
      concurrency   = 1
      schedule = {
        job         = "sweep"
        cron        = var.sweep_schedule
        retry_count = 0 # The next sweep is minutes away.
      }
      workflow      = false
      storage       = false
      subscriptions = []
      dead_letters  = false
      env = {
        SWEEP_BATCH = tostring(var.sweep_batch)
      }
      secrets   = []
      publishes = local.outbox_topics # Re-drives any step; flushes every outbox.
      buckets   = []
      roles     = []
    }

    starter = {
      description   = "Starts one lesson-pipeline execution per lesson version."
      entry_point   = "Starter"
      memory        = "256Mi"
      cpu           = null
      timeout       = 180
      max_instances = 10
      concurrency   = 1
      schedule      = null
      workflow      = false
      # The raw bucket's object-finalized events (the video landed)...
      storage = true
      # ...and the sweeper's re-drives of the process step, which a storage
      # event cannot carry.
      subscriptions = [
        { topic = local.topic_downloaded, filter = null, max_attempts = null, dead_letter = true },
      ]
      dead_letters = false
      env = {
        RAW_BUCKET = google_storage_bucket.raw.name
        # A name, not the resource's id: the workflow depends on the
        # functions (their URLs), so a function cannot depend on it.
        WORKFLOW = local.workflow_id
        # An execution's longest run: the transcription polling window and
        # an hour for the rest (shared/start).
        PROCESS_LEASE = "${local.transcription_window_seconds + 3600}s"
      }
      secrets   = []
      publishes = [local.topic_events] # A start that failed for good.
      buckets   = []
      roles = [
        "roles/workflows.invoker", # https://cloud.google.com/iam/docs/roles-permissions/workflows#workflows.invoker — starts lesson-pipeline executions.
      ]
    }

    transcriber = {
      description   = "Transcribes a lesson version with Speech-to-Text v2 (called by lesson-pipeline)."
      entry_point   = "Transcriber"
      memory        = "1Gi"
      cpu           = "1" # ffmpeg extracts and cuts the audio.
      timeout       = 1800
      max_instances = 10
      concurrency   = 1
      schedule      = null
      workflow      = true
      storage       = false
      subscriptions = []
      dead_letters  = false
      env = {
        RAW_BUCKET               = google_storage_bucket.raw.name
        ARTIFACTS_BUCKET         = google_storage_bucket.artifacts.name
        SPEECH_LOCATION          = var.speech_location
        SPEECH_MODEL             = var.speech_model
        SPEECH_FALLBACK_MODEL    = var.speech_fallback_model
        SPEECH_FALLBACK_LOCATION = var.speech_fallback_location
        PROCESSING_STRATEGY      = var.speech_processing_strategy
        LANGUAGE                 = var.language
        COURSE_LANGUAGES         = length(var.course_languages) > 0 ? jsonencode(var.course_languages) : ""
        # A start holds the stage while it extracts audio: as long as the
        # function may run.
        TRANSCRIBE_EXTRACT_LEASE = "1800s"
      }
      secrets   = []
      publishes = [local.topic_events] # A transcription failed for good.
      buckets = [
        # Reads the video, writes the audio segments beside it.
        { bucket = "raw", role = "roles/storage.objectUser", prefix = local.lessons_prefix },
        { bucket = "artifacts", role = "roles/storage.objectUser", prefix = local.lessons_prefix },
      ]
      roles = [
        "roles/speech.client", # https://cloud.google.com/iam/docs/roles-permissions/speech#speech.client — BatchRecognize and its operations.
      ]
    }

    analyzer = {
      description   = "Analyzes a lesson version's video with Gemini (called by lesson-pipeline)."
      entry_point   = "Analyzer"
      memory        = "512Mi"
      cpu           = null
      timeout       = 1800 # The workflow's call timeout; ANALYZE_LEASE is 30m.
      max_instances = 10
      concurrency   = 1
      schedule      = null
      workflow      = true
      storage       = false
      subscriptions = []
      dead_letters  = false
      env = {
        RAW_BUCKET       = google_storage_bucket.raw.name
        ARTIFACTS_BUCKET = google_storage_bucket.artifacts.name
        ANALYSIS_ENABLED = tostring(var.analysis_enabled)
        GEMINI_MODEL     = var.gemini_model
        GEMINI_LOCATION  = var.gemini_location
      }
      secrets   = []
      publishes = [local.topic_events] # An analysis failed for good.
      buckets = [
        { bucket = "raw", role = "roles/storage.objectViewer", prefix = local.lessons_prefix },
        { bucket = "artifacts", role = "roles/storage.objectUser", prefix = local.lessons_prefix },
      ]
      roles = [
        "roles/aiplatform.user", # https://cloud.google.com/iam/docs/roles-permissions/aiplatform#aiplatform.user — Gemini on Vertex AI.
      ]
    }

    enricher = {
      description   = "Classifies, describes and chunks a processed lesson version."
      entry_point   = "Enricher"
      memory        = "512Mi"
      cpu           = null
      timeout       = 600 # ENRICH_LEASE (10m).
      max_instances = 5
      concurrency   = 1
      schedule      = null
      workflow      = false
      storage       = false
      subscriptions = [
        { topic = local.topic_processed, filter = null, max_attempts = null, dead_letter = true },
      ]
      dead_letters = false
      env = {
        ARTIFACTS_BUCKET        = google_storage_bucket.artifacts.name
        EMBEDDING_MODEL         = var.embedding_model
        EMBEDDING_DIMENSIONS    = tostring(var.embedding_dimensions)
        GEMINI_MODEL            = var.gemini_model
        GEMINI_LOCATION         = var.gemini_location
        CHUNK_MAX_TOKENS        = tostring(var.chunk_max_tokens)
        CHUNK_OVERLAP_TOKENS    = tostring(var.chunk_overlap_tokens)
        HOTMART_CLUB_LESSON_URL = var.club_lesson_url
      }
      secrets   = ["OPENAI_API_KEY"] # Embeddings.
      publishes = [local.topic_enriched, local.topic_events]
      buckets = [
        { bucket = "artifacts", role = "roles/storage.objectUser", prefix = local.lessons_prefix },
      ]
      roles = [
        "roles/aiplatform.user", # https://cloud.google.com/iam/docs/roles-permissions/aiplatform#aiplatform.user — Gemini on Vertex AI.
      ]
    }

    syncer = {
      description   = "Publishes a lesson version's knowledge into its school's OpenAI vector store; retires removed lessons."
      entry_point   = "Syncer"
      memory        = "512Mi"
      cpu           = null
      timeout       = 900 # SYNC_LEASE (15m).
      max_instances = 5
      concurrency   = 1
      schedule      = null
      workflow      = false
      storage       = false
      subscriptions = [
        { topic = local.topic_enriched, filter = null, max_attempts = null, dead_letter = true },
        # Removed lessons only; the notifier reads the rest of the topic.
        { topic = local.topic_events, filter = "attributes.kind = \"removed\"", max_attempts = null, dead_letter = true },
      ]
      dead_letters = false
      env = {
        ARTIFACTS_BUCKET         = google_storage_bucket.artifacts.name
        CHUNK_MAX_TOKENS         = tostring(var.chunk_max_tokens)
        CHUNK_OVERLAP_TOKENS     = tostring(var.chunk_overlap_tokens)
        VECTOR_STORE_NAME_PREFIX = var.vector_store_name_prefix
      }
      secrets   = ["OPENAI_API_KEY"]
      publishes = [local.topic_events] # synced, or failed for good.
      buckets = [
        { bucket = "artifacts", role = "roles/storage.objectViewer", prefix = local.lessons_prefix },
      ]
      roles = []
    }

    notifier = {
      description   = "Sends run digests, failure alerts and dead-letter alarms over Slack and e-mail."
      entry_point   = "Notifier"
      memory        = "256Mi"
      cpu           = null
      timeout       = 300
      max_instances = 3
      concurrency   = 1
      schedule      = null
      workflow      = false
      storage       = false
      subscriptions = [
        # A run's digest is nacked until the run ends or NOTIFY_RUN_WAIT
        # passes: at least 8 deliveries (10 s doubling to 600 s) cover its
        # 15 minutes. terraform/tfcheck checks the sum.
        { topic = local.topic_events, filter = null, max_attempts = max(8, var.max_delivery_attempts), dead_letter = true },
      ]
      # Every other dead-letter topic, with no dead-letter policy of its own
      # (its own dead letters would only come back to it: a pull
      # subscription keeps them, pubsub.tf).
      dead_letters = true
      env = {
        SMTP_HOST               = var.smtp_host
        SMTP_PORT               = var.smtp_host == "" ? "" : tostring(var.smtp_port)
        SMTP_USER               = var.smtp_user
        MAIL_FROM               = var.mail_from
        MAIL_TO                 = join(",", var.mail_to)
        HOTMART_CLUB_LESSON_URL = var.club_lesson_url
        NOTIFY_RUN_WAIT         = var.notify_run_wait
      }
      # Optional channels (config.Notifier): deployed only when switched on.
      secrets   = concat(var.notify_slack ? ["SLACK_WEBHOOK_URL"] : [], var.smtp_user != "" ? ["SMTP_PASSWORD"] : [])
      publishes = []
      buckets   = []
      roles     = []
    }

    replayer = {
      description   = "Replays a lesson from a stage: gcloud pubsub topics publish lesson-replay --message='{\"lessonId\":\"..\",\"from\":\"transcribe\"}'."
      entry_point   = "Replayer"
      memory        = "256Mi"
      cpu           = null
      timeout       = 120
      max_instances = 2
      concurrency   = 1
      schedule      = null
      workflow      = false
      storage       = false
      subscriptions = [
        { topic = local.topic_replay, filter = null, max_attempts = null, dead_letter = true },
      ]
      dead_letters = false
      env          = {}
      secrets      = []
      publishes    = local.outbox_topics # Re-emits the event of whichever step the replay starts from.
      buckets      = []
      roles        = []
    }
  }

  # Environment every function reads (config.Common).
  common_env = {
    GOOGLE_CLOUD_PROJECT = var.project_id
    LOG_LEVEL            = var.log_level
    TRACE_EXPORTER       = "cloudtrace"
    TRACE_SAMPLE_RATIO   = tostring(var.trace_sample_ratio)
    MAX_ATTEMPTS         = tostring(var.max_attempts)
    PENDING_AFTER        = var.pending_after
  }

  # Empty values are left out: the function then uses its default (an
  # unset SMTP_HOST, MEDIA_MANIFEST_URI, ...).
  function_env = {
    for name, f in local.functions : name => { for k, v in merge(local.common_env, f.env) : k => v if v != "" }
  }

  # Views of local.functions by who calls it.
  scheduled_functions = { for name, f in local.functions : name => f if f.schedule != null }
  workflow_functions  = { for name, f in local.functions : name => f if f.workflow }
  storage_functions   = { for name, f in local.functions : name => f if f.storage }
  # Functions called by an identity of their own (a Scheduler job, Pub/Sub
  # push, Eventarc); the workflow has one identity for the functions it calls.
  triggered_functions = { for name, f in local.functions : name => f if f.schedule != null || f.storage || length(f.subscriptions) > 0 || f.dead_letters }
  # Trigger identities the Pub/Sub service agent mints OIDC tokens for
  # (push subscriptions; Eventarc delivers through Pub/Sub too).
  pushed_functions = { for name, f in local.functions : name => f if f.storage || length(f.subscriptions) > 0 || f.dead_letters }

  # Flattened grants: "function/target" => {function, target, ...}.
  function_publishes = merge([
    for name, f in local.functions : {
      for topic in f.publishes : "${name}/${topic}" => { function = name, topic = topic }
    }
  ]...)
  function_buckets = merge([
    for name, f in local.functions : {
      for g in f.buckets : "${name}/${g.bucket}/${g.role}/${coalesce(g.prefix, "*")}" => merge(g, { function = name })
    }
  ]...)
  # Every function that holds an object role on a bucket reads the bucket's
  # own metadata too: the start-up checks (Bucket.Attrs) need
  # storage.buckets.get, which no object role grants.
  function_bucket_readers = merge([
    for name, f in local.functions : {
      for b in distinct([for g in f.buckets : g.bucket]) : "${name}/${b}" => { function = name, bucket = b }
    }
  ]...)
  function_secrets = merge([
    for name, f in local.functions : {
      for secret in f.secrets : "${name}/${secret}" => { function = name, secret = secret }
    }
  ]...)
  function_roles = merge([
    for name, f in local.functions : {
      for role in f.roles : "${name}/${role}" => { function = name, role = role }
    }
  ]...)
}

#-- Functions --#

# One source archive (the module root imports every function package) deploys
# every function; each one runs its own entry point.
#
# Base image: the google provider (6.50) takes no base image for a function
# (build_config has runtime, entry_point, docker_repository, service_account,
# worker_pool, environment variables and update policies only), and the
# Cloud Functions API picks the stack itself. Functions deployed through
# that API run on the "-full" stack of their runtime (google-24-full for
# go126, which has ffmpeg; the Cloud Functions execution-environment page
# lists .../serverless-runtimes/google-24-full/runtimes/...). The transcriber
# checks for ffmpeg and ffprobe at start-up (audio.CheckTools), so a stack
# without them shows as "transcriber cannot start" on its first call, not in
# the middle of a lesson; docs/deploy.md says what to do then.
resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  name        = each.key
  location    = var.region
  description = each.value.description
  labels      = merge(var.labels, { stage = each.key })

  build_config {
    runtime           = "go126"
    entry_point       = each.value.entry_point
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket_object.source.bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout
    max_instance_count               = each.value.max_instances
    max_instance_request_concurrency = each.value.concurrency
    service_account_email            = google_service_account.function[each.key].email
    all_traffic_on_latest_revision   = true
    # Private: reachable only from inside the project (Cloud Scheduler,
    # Pub/Sub push, Eventarc and Workflows of this project count as inside),
    # and only by the identities given roles/run.invoker in iam.tf.
    ingress_settings      = "ALLOW_INTERNAL_ONLY"
    environment_variables = local.function_env[each.key]

    # Cloud Run reads a secret when an instance starts and refuses to start
    # without it: the version this names exists before the function
    # (secrets.tf), and a new version redeploys the function on it.
    dynamic "secret_environment_variables" {
      for_each = toset(each.value.secrets)
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = google_secret_manager_secret_version.value[secret_environment_variables.value].version
      }
    }
  }

  # Storage-triggered functions only (the starter): Eventarc delivers
  # google.cloud.storage.object.v1.finalized from the raw bucket.
  dynamic "event_trigger" {
    for_each = each.value.storage ? [each.key] : []
    content {
      trigger_region        = var.region
      event_type            = "google.cloud.storage.object.v1.finalized"
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.trigger[each.key].email

      event_filters {
        attribute = "bucket"
        value     = google_storage_bucket.raw.name
      }
    }
  }

  depends_on = [
    terraform_data.apis_ready,
    # The build account's, the secrets', Eventarc's and the Storage
    # agent's grants, and the time they take to apply (iam.tf).
    terraform_data.deploy_grants_ready,
  ]
}
