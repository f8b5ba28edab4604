#-- Function specs --#

# Every function of the pipeline is one entry of local.functions. Adding a
# stage (starter, transcriber, analyzer, enricher, syncer, notifier) means
# adding an entry here: its service account, invoker, trigger, subscription,
# dead-letter topic and grants all follow from the entry.
#
# trigger says who calls the function:
#   scheduler  HTTP; Cloud Scheduler with OIDC (scheduler.tf)
#   pubsub     HTTP; our push subscription to `topic`, with OIDC and a
#              dead-letter topic (pubsub.tf). functions-framework-go turns the
#              raw push body into a messagePublished CloudEvent.
#   storage    Eventarc; object finalized in the raw bucket
#   workflow   HTTP; the lesson-pipeline workflow with OIDC (workflows.tf)
#
# publishes: topics the function publishes to (publisher on each).
# buckets:   bucket key (raw, artifacts) => the role the function needs on it.
# secrets:   environment variable names filled from Secret Manager (secrets.tf).
# roles:     other project roles, each with its docs link beside it.
locals {
  functions = {
    detector = {
      description   = "Reads the course structure from Hotmart and emits lesson-discovered events."
      entry_point   = "Detector"
      trigger       = "scheduler"
      topic         = null
      memory        = "512Mi"
      timeout       = 540 # DETECTION_BUDGET (8m) fits inside, with room to record the run.
      max_instances = 1   # One detection run at a time.
      concurrency   = 1
      env = {
        HOTMART_BASE_URL    = var.hotmart_base_url
        HOTMART_TOKEN_URL   = var.hotmart_token_url
        COURSE_CATALOG      = jsonencode(var.course_catalog)
        MEDIA_MANIFEST_URI  = var.media_manifest_uri
        MEDIA_INGEST_PREFIX = var.media_ingest_prefix
        DETECTION_BUDGET    = var.detection_budget
      }
      secrets = ["HOTMART_CLIENT_ID", "HOTMART_CLIENT_SECRET", "HOTMART_BASIC_TOKEN"]
      # lesson-processed: a title-only change skips straight to enrich.
      publishes = ["lesson-discovered", "lesson-processed", "lesson-events"]
      buckets = {
        raw = "roles/storage.objectViewer" # Lists the ingest prefix and reads a gs:// media manifest.
      }
      roles = []
    }

    downloader = {
      description = "Streams a lesson's video into the raw bucket."
      entry_point = "Downloader"
      trigger     = "pubsub"
      topic       = "lesson-discovered"
      memory      = "512Mi"
      # Matches DOWNLOAD_LEASE (30m). Pub/Sub waits at most 600s for a push
      # answer; a redelivery during a longer download finds the live lease
      # and is acknowledged.
      timeout       = 1800
      max_instances = 10
      concurrency   = 1
      env = {
        MAX_MEDIA_BYTES = tostring(var.max_media_bytes)
      }
      secrets   = []
      publishes = ["lesson-events"]
      buckets = {
        raw = "roles/storage.objectUser" # Writes lessons/..., reads ingest/... masters.
      }
      roles = []
    }

    # starter = {
    #   entry_point = "Starter", trigger = "storage", topic = null,
    #   roles = ["roles/workflows.invoker"], # https://cloud.google.com/iam/docs/roles-permissions/workflows#workflows.invoker
    #   ...
    # }
    # transcriber = { entry_point = "Transcriber", trigger = "workflow", ... }
  }

  # Environment every function reads.
  common_env = {
    GOOGLE_CLOUD_PROJECT = var.project_id
    RAW_BUCKET           = google_storage_bucket.raw.name
    ARTIFACTS_BUCKET     = google_storage_bucket.artifacts.name
    LOG_LEVEL            = var.log_level
    TRACE_EXPORTER       = "cloudtrace"
  }

  # Views of local.functions by trigger.
  pushed_functions   = { for name, f in local.functions : name => f if f.trigger == "pubsub" }
  storage_functions  = { for name, f in local.functions : name => f if f.trigger == "storage" }
  workflow_functions = { for name, f in local.functions : name => f if f.trigger == "workflow" }
  # Functions with a trigger identity of their own (the workflow has one
  # service account for all the functions it calls).
  triggered_functions = { for name, f in local.functions : name => f if f.trigger != "workflow" }

  # Flattened grants: "function/target" => {function, target, role}.
  function_publishes = merge([
    for name, f in local.functions : {
      for topic in f.publishes : "${name}/${topic}" => { function = name, topic = topic }
    }
  ]...)
  function_buckets = merge([
    for name, f in local.functions : {
      for bucket, role in f.buckets : "${name}/${bucket}" => { function = name, bucket = bucket, role = role }
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
resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  name        = each.key
  location    = var.region
  description = each.value.description
  labels      = merge(var.labels, { stage = each.key })

  build_config {
    runtime         = "go126"
    entry_point     = each.value.entry_point
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = var.source_object
      }
    }
  }

  service_config {
    available_memory                 = each.value.memory
    timeout_seconds                  = each.value.timeout
    max_instance_count               = each.value.max_instances
    max_instance_request_concurrency = each.value.concurrency
    service_account_email            = google_service_account.function[each.key].email
    all_traffic_on_latest_revision   = true
    # Private: reachable only from inside the project (Cloud Scheduler,
    # Pub/Sub push, Eventarc and Workflows of this project count as inside),
    # and only by the identities given roles/run.invoker in iam.tf.
    ingress_settings      = "ALLOW_INTERNAL_ONLY"
    environment_variables = merge(local.common_env, each.value.env)

    dynamic "secret_environment_variables" {
      for_each = toset(each.value.secrets)
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  # Storage-triggered functions only (the starter, later): Eventarc delivers
  # google.cloud.storage.object.v1.finalized from the raw bucket.
  dynamic "event_trigger" {
    for_each = each.value.trigger == "storage" ? [each.key] : []
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
    google_project_service.enabled,
    google_project_iam_member.build_builder,
    google_secret_manager_secret_iam_member.function_accessor,
    google_project_iam_member.gcs_agent_publisher,
    google_project_iam_member.trigger_event_receiver,
  ]
}
