#-- Workflow --#

# lesson-pipeline: transcribe and analyze one lesson version in parallel, then
# publish lesson-processed (workflows/lesson-pipeline.yaml). It reads the URLs
# of the functions it calls from its environment, <NAME>_URL for each
# workflow-triggered function of local.functions (none yet: the workflow is
# deployed, and runs once the transcriber and analyzer exist).
resource "google_workflows_workflow" "lesson_pipeline" {
  name            = "lesson-pipeline"
  region          = var.region
  description     = "Transcribes and analyzes one lesson version in parallel, then publishes lesson-processed."
  service_account = google_service_account.workflow.id
  source_contents = file("${path.module}/../workflows/lesson-pipeline.yaml")
  call_log_level  = "LOG_ERRORS_ONLY"
  labels          = var.labels

  user_env_vars = {
    for name, f in local.workflow_functions :
    "${upper(name)}_URL" => google_cloudfunctions2_function.function[name].service_config[0].uri
  }

  # Executions in progress run the revision they started with; replacing the
  # workflow is safe.
  deletion_protection = false

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.workflow_log_writer,
  ]
}
