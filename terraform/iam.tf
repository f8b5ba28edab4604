#-- Service accounts --#

# One identity per function: what the function itself may do.
resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = "fn-${each.key}"
  display_name = "Function ${each.key}"
  description  = "Runtime identity of the ${each.key} function."

  depends_on = [terraform_data.apis_ready]
}

# One identity per called function: what may call it (its Cloud Scheduler
# job, its push subscriptions, its Eventarc trigger). Functions called by the
# workflow use the workflow's identity instead.
resource "google_service_account" "trigger" {
  for_each = local.triggered_functions

  account_id   = "${each.key}-trigger"
  display_name = "Trigger of ${each.key}"
  description  = "Identity Cloud Scheduler, Pub/Sub push or Eventarc calls ${each.key} with (OIDC)."

  depends_on = [terraform_data.apis_ready]
}

# The lesson-pipeline workflow's identity.
resource "google_service_account" "workflow" {
  account_id   = "wf-lesson-pipeline"
  display_name = "Workflow lesson-pipeline"
  description  = "Identity of the lesson-pipeline workflow: calls the transcriber and analyzer, publishes lesson-processed."

  depends_on = [terraform_data.apis_ready]
}

#-- Service agents --#

# Google-managed identities this configuration grants roles to. Cloud Storage
# makes its agent on demand when asked for it (the data source below); the
# Pub/Sub, Speech-to-Text and Vertex AI agents exist only once something made
# them, which `make bootstrap` does (gcloud beta services identity create)
# before the first apply: on a project where they are missing, the grants
# below fail with "Service account ... does not exist" (docs/deploy.md).
locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  speech_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-speech.iam.gserviceaccount.com"
  vertex_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-aiplatform.iam.gserviceaccount.com"
}

data "google_storage_project_service_account" "gcs" {
  depends_on = [terraform_data.apis_ready]
}

#-- Function grants --#

# roles/datastore.user: https://cloud.google.com/iam/docs/roles-permissions/datastore#datastore.user
# Why: every function claims its stage and records lesson state in Firestore
# transactions (DESIGN.md section 4).
resource "google_project_iam_member" "function_datastore_user" {
  for_each = local.functions

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.function[each.key].member
}

# roles/cloudtrace.agent: https://cloud.google.com/iam/docs/roles-permissions/cloudtrace#cloudtrace.agent
# Why: every function exports its spans to Cloud Trace (TRACE_EXPORTER), so
# one trace follows a lesson through every stage.
resource "google_project_iam_member" "function_trace_agent" {
  for_each = local.functions

  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = google_service_account.function[each.key].member
}

# Bucket roles from each spec's `buckets`, on that bucket only, and under a
# prefix where the spec names one:
#   roles/storage.objectViewer https://cloud.google.com/iam/docs/roles-permissions/storage#storage.objectViewer
#   roles/storage.objectUser   https://cloud.google.com/iam/docs/roles-permissions/storage#storage.objectUser
# Why: each spec says it beside the grant. A prefix condition covers object
# reads and writes; listing is checked against the bucket, which the
# condition does not match (the functions that list hold a whole-bucket
# grant).
resource "google_storage_bucket_iam_member" "function_bucket" {
  for_each = local.function_buckets

  bucket = local.bucket_names[each.value.bucket]
  role   = each.value.role
  member = google_service_account.function[each.value.function].member

  dynamic "condition" {
    for_each = each.value.prefix == null ? [] : [each.value.prefix]
    content {
      title       = "objects under ${condition.value}"
      description = "Only objects under ${condition.value} of this bucket."
      expression  = "resource.name.startsWith(\"projects/_/buckets/${local.bucket_names[each.value.bucket]}/objects/${condition.value}\")"
    }
  }
}

# roles/storage.legacyBucketReader: https://cloud.google.com/iam/docs/roles-permissions/storage#storage.legacyBucketReader
# Why: the functions check at start-up that their buckets can be reached
# (Bucket.Attrs: storage.buckets.get, in no object role). It also lists
# object names, never their content.
resource "google_storage_bucket_iam_member" "function_bucket_reader" {
  for_each = local.function_bucket_readers

  bucket = local.bucket_names[each.value.bucket]
  role   = "roles/storage.legacyBucketReader"
  member = google_service_account.function[each.value.function].member
}

# roles/pubsub.publisher: https://cloud.google.com/iam/docs/roles-permissions/pubsub#pubsub.publisher
# Why: a function emits the next stage's event, on the topics its spec lists
# under `publishes` and no others.
resource "google_pubsub_topic_iam_member" "function_publisher" {
  for_each = local.function_publishes

  topic  = google_pubsub_topic.topic[each.value.topic].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.function[each.value.function].member
}

# Other project roles from each spec's `roles` (the spec links each role's page
# and says why).
resource "google_project_iam_member" "function_extra" {
  for_each = local.function_roles

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.function[each.value.function].member
}

#-- Service agent grants --#

# roles/storage.objectUser: https://cloud.google.com/iam/docs/roles-permissions/storage
# Why: BatchRecognize reads the audio segments and writes its results (both
# in the artifacts bucket: .../audio/, .../speech/) as the Speech-to-Text
# service agent, not as the transcriber. Under lessons/ only; nothing in the
# raw bucket.
resource "google_storage_bucket_iam_member" "speech_agent" {
  for_each = {
    artifacts = "roles/storage.objectUser"
  }

  bucket = local.bucket_names[each.key]
  role   = each.value
  member = local.speech_agent

  condition {
    title       = "lesson objects"
    description = "Only objects under lessons/."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${local.bucket_names[each.key]}/objects/${local.lessons_prefix}\")"
  }

  depends_on = [terraform_data.apis_ready]
}

# roles/storage.objectViewer: https://cloud.google.com/iam/docs/roles-permissions/storage#storage.objectViewer
# Why: Gemini reads a gs:// video part as the Vertex AI service agent (the
# analyzer passes the video's URI, never its bytes). Under lessons/ only.
resource "google_storage_bucket_iam_member" "vertex_agent" {
  bucket = google_storage_bucket.raw.name
  role   = "roles/storage.objectViewer"
  member = local.vertex_agent

  condition {
    title       = "lesson objects"
    description = "Only objects under lessons/."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.raw.name}/objects/${local.lessons_prefix}\")"
  }

  depends_on = [terraform_data.apis_ready]
}

#-- Invokers --#

# roles/run.invoker: https://cloud.google.com/iam/docs/roles-permissions/run#run.invoker
# Why: a 2nd gen function is a Cloud Run service; its trigger identity (the
# scheduler job's, the push subscriptions' or the Eventarc trigger's) must be
# allowed to call it. No allUsers: the functions are private.
resource "google_cloud_run_v2_service_iam_member" "trigger_invoker" {
  for_each = local.triggered_functions

  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.trigger[each.key].member
}

# roles/run.invoker: https://cloud.google.com/iam/docs/roles-permissions/run#run.invoker
# Why: the workflow calls the transcriber and analyzer over HTTP with OIDC.
resource "google_cloud_run_v2_service_iam_member" "workflow_invoker" {
  for_each = local.workflow_functions

  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.workflow.member
}

#-- Trigger grants --#

# roles/iam.serviceAccountTokenCreator: https://cloud.google.com/iam/docs/roles-permissions/iam#iam.serviceAccountTokenCreator
# Why: the Pub/Sub service agent mints the OIDC tokens of push subscriptions
# (ours, and Eventarc's) as the trigger identity (needed explicitly in
# projects made before April 2021).
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  for_each = local.pushed_functions

  service_account_id = google_service_account.trigger[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# roles/eventarc.eventReceiver: https://cloud.google.com/iam/docs/roles-permissions/eventarc#eventarc.eventReceiver
# Why: an Eventarc trigger's identity must be allowed to receive the events it
# routes (storage-triggered functions only).
resource "google_project_iam_member" "trigger_event_receiver" {
  for_each = local.storage_functions

  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.trigger[each.key].member
}

# roles/pubsub.publisher: https://cloud.google.com/iam/docs/roles-permissions/pubsub#pubsub.publisher
# Why: Cloud Storage publishes object notifications to the Pub/Sub topic that
# Eventarc creates for a storage trigger.
resource "google_project_iam_member" "gcs_agent_publisher" {
  count = length(local.storage_functions) > 0 ? 1 : 0

  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = data.google_storage_project_service_account.gcs.member
}

#-- Workflow grants --#

# roles/logging.logWriter: https://cloud.google.com/iam/docs/roles-permissions/logging#logging.logWriter
# Why: the workflow writes its call logs (call_log_level) as its own identity.
resource "google_project_iam_member" "workflow_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.workflow.member
}

# roles/pubsub.publisher: https://cloud.google.com/iam/docs/roles-permissions/pubsub#pubsub.publisher
# Why: the workflow publishes lesson-processed when both branches are done.
# It never announces a failure itself (the functions do), so it has no grant
# on lesson-events.
resource "google_pubsub_topic_iam_member" "workflow_publisher" {
  topic  = google_pubsub_topic.topic[local.topic_processed].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.workflow.member
}

#-- Waits --#

# The grants a deploy uses within seconds of being made: the build account's
# (the build starts at once), the secrets' (Cloud Run checks that the runtime
# identity can read them when it creates the revision), and Eventarc's (the
# trigger is validated when it is created). IAM documents that a change
# usually applies within 2 minutes and can take 7 or more: the functions wait
# var.iam_propagation_seconds after the last of these, once, and again only
# when one of them is added. A deploy that still meets "Permission denied"
# here succeeds when run again (the rest is in place; only the failed
# functions are created then).
resource "terraform_data" "deploy_grants_ready" {
  triggers_replace = sort(concat(
    keys(local.function_secrets),
    keys(local.storage_functions),
    keys(local.pushed_functions),
    [for k, v in local.build_roles : "build/${k}"],
  ))

  provisioner "local-exec" {
    command = "sleep ${var.iam_propagation_seconds}"
  }

  depends_on = [
    google_project_iam_member.build,
    google_artifact_registry_repository_iam_member.build_writer,
    google_secret_manager_secret_iam_member.function_accessor,
    google_project_iam_member.trigger_event_receiver,
    google_project_iam_member.gcs_agent_publisher,
    google_service_account_iam_member.pubsub_agent_token_creator,
  ]
}
