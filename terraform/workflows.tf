#-- Workflow --#

locals {
  workflow_name = "lesson-pipeline"
  # The starter's WORKFLOW (functions.tf): the workflow's full resource name,
  # written out because the workflow itself depends on the functions.
  workflow_id = "projects/${var.project_id}/locations/${var.region}/workflows/${local.workflow_name}"

  # How long a recognition may take, which the workflow's polling must
  # cover (shared/transcribe Config.RecognitionLease: 25 h with dynamic
  # batching, answered within 24 h; 2 h otherwise).
  transcription_window_seconds = var.speech_processing_strategy == "DYNAMIC_BATCHING" ? 25 * 3600 : 2 * 3600

  # The environment workflows/lesson-pipeline.yaml reads (its header).
  workflow_env = merge(
    {
      for name, f in local.workflow_functions :
      "${upper(name)}_URL" => google_cloudfunctions2_function.function[name].service_config[0].uri
    },
    {
      POLL_SECONDS = tostring(var.transcription_poll_seconds)
      MAX_POLLS    = tostring(ceil(local.transcription_window_seconds / var.transcription_poll_seconds))
      # The topic's name: the workflow makes projects/P/topics/<name> of it.
      TOPIC_PROCESSED = local.topic_processed
    },
  )
}

# lesson-pipeline: transcribe and analyze one lesson version in parallel, then
# publish lesson-processed (workflows/lesson-pipeline.yaml). The starter
# starts one execution per lesson version.
resource "google_workflows_workflow" "lesson_pipeline" {
  name            = local.workflow_name
  region          = var.region
  description     = "Transcribes and analyzes one lesson version in parallel, then publishes lesson-processed."
  service_account = google_service_account.workflow.id
  source_contents = file("${path.module}/../workflows/lesson-pipeline.yaml")
  call_log_level  = "LOG_ERRORS_ONLY"
  labels          = var.labels
  user_env_vars   = local.workflow_env

  # Executions in progress run the revision they started with; replacing the
  # workflow is safe.
  deletion_protection = false

  depends_on = [
    terraform_data.apis_ready,
    google_project_iam_member.workflow_log_writer,
    google_pubsub_topic.topic,
  ]
}
