#-- Service accounts --#

# One identity per function: what the function itself may do.
resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = "fn-${each.key}"
  display_name = "Function ${each.key}"
  description  = "Runtime identity of the ${each.key} function."

  depends_on = [google_project_service.enabled]
}

# One identity per trigger: what may call the function (Cloud Scheduler,
# a Pub/Sub push subscription or an Eventarc trigger). Functions called by the
# workflow use the workflow's identity instead.
resource "google_service_account" "trigger" {
  for_each = local.triggered_functions

  account_id   = "${each.key}-trigger"
  display_name = "Trigger of ${each.key} (${each.value.trigger})"
  description  = "Identity the ${each.value.trigger} trigger of ${each.key} calls it with (OIDC)."

  depends_on = [google_project_service.enabled]
}

# The lesson-pipeline workflow's identity.
resource "google_service_account" "workflow" {
  account_id   = "wf-lesson-pipeline"
  display_name = "Workflow lesson-pipeline"
  description  = "Identity of the lesson-pipeline workflow: calls the transcriber and analyzer, publishes lesson-processed."

  depends_on = [google_project_service.enabled]
}

# Cloud Build builds the functions as this account, not as the Compute Engine
# default account (which new projects no longer give broad roles).
resource "google_service_account" "build" {
  account_id   = "function-build"
  display_name = "Function builds"
  description  = "Builds the functions' images from the source archive."

  depends_on = [google_project_service.enabled]
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

# Bucket roles from each spec's `buckets`, on that bucket only:
#   roles/storage.objectViewer https://cloud.google.com/iam/docs/roles-permissions/storage#storage.objectViewer
#   roles/storage.objectUser   https://cloud.google.com/iam/docs/roles-permissions/storage#storage.objectUser
# Why: each spec says it next to the role.
resource "google_storage_bucket_iam_member" "function_bucket" {
  for_each = local.function_buckets

  bucket = local.bucket_names[each.value.bucket]
  role   = each.value.role
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

#-- Invokers --#

# roles/run.invoker: https://cloud.google.com/iam/docs/roles-permissions/run#run.invoker
# Why: a 2nd gen function is a Cloud Run service; its trigger identity (the
# scheduler job's, the push subscription's or the Eventarc trigger's) must be
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
# Why: the Pub/Sub service agent mints the push subscription's OIDC tokens as
# the trigger identity (needed explicitly in projects made before April 2021).
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

# The Cloud Storage service agent, only once a storage-triggered function exists.
data "google_storage_project_service_account" "gcs" {
  count = length(local.storage_functions) > 0 ? 1 : 0
}

# roles/pubsub.publisher: https://cloud.google.com/iam/docs/roles-permissions/pubsub#pubsub.publisher
# Why: Cloud Storage publishes object notifications to the Pub/Sub topic that
# Eventarc creates for a storage trigger.
resource "google_project_iam_member" "gcs_agent_publisher" {
  count = length(local.storage_functions) > 0 ? 1 : 0

  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = data.google_storage_project_service_account.gcs[0].member
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
# Why: the workflow publishes lesson-processed when both branches are done, and
# lesson-events when one failed.
resource "google_pubsub_topic_iam_member" "workflow_publisher" {
  for_each = toset(["lesson-processed", "lesson-events"])

  topic  = google_pubsub_topic.topic[each.value].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.workflow.member
}

#-- Build grants --#

# roles/cloudbuild.builds.builder: https://cloud.google.com/iam/docs/roles-permissions/cloudbuild#cloudbuild.builds.builder
# Why: the build account reads the source archive, writes the image to
# Artifact Registry and writes build logs.
resource "google_project_iam_member" "build_builder" {
  project = var.project_id
  role    = "roles/cloudbuild.builds.builder"
  member  = google_service_account.build.member
}
