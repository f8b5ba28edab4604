#-- APIs --#

locals {
  services = [
    "aiplatform.googleapis.com",           # Gemini (analyzer, enricher).
    "artifactregistry.googleapis.com",     # Images Cloud Build makes from the function source.
    "cloudbuild.googleapis.com",           # Builds the functions; runs cloudbuild.yaml.
    "cloudfunctions.googleapis.com",       # Cloud Functions 2nd gen.
    "cloudresourcemanager.googleapis.com", # Project IAM members.
    "cloudscheduler.googleapis.com",       # Runs the detector and the sweeper on schedules.
    "cloudtrace.googleapis.com",           # The functions export their spans (TRACE_EXPORTER=cloudtrace).
    "eventarc.googleapis.com",             # Object-finalized trigger of the starter.
    "firestore.googleapis.com",            # Lesson state, taxonomy vectors.
    "iam.googleapis.com",                  # Service accounts.
    "iamcredentials.googleapis.com",       # OIDC tokens for push, scheduler and workflow calls.
    "logging.googleapis.com",              # Function and workflow logs, log-based metrics.
    "monitoring.googleapis.com",           # Alert policies, dashboard.
    "pubsub.googleapis.com",               # Lesson events.
    "run.googleapis.com",                  # The Cloud Run services behind the functions.
    "secretmanager.googleapis.com",        # Hotmart, OpenAI, Slack and SMTP credentials.
    "speech.googleapis.com",               # Speech-to-Text v2 (transcriber).
    "storage.googleapis.com",              # Buckets.
    "workflows.googleapis.com",            # lesson-pipeline.
  ]
}

resource "google_project_service" "enabled" {
  for_each = toset(local.services)

  project = var.project_id
  service = each.value
  # Other things in the project may use these APIs too.
  disable_on_destroy = false
}

# An API answers "has not been used in project ... or it is disabled. If you
# enabled this API recently, wait a few minutes for the action to propagate
# to our systems and retry" for a while after it is enabled. Everything that
# calls a new API waits here once; the wait runs again only when the list of
# APIs changes. terraform_data is built into Terraform: no extra provider.
resource "terraform_data" "apis_ready" {
  triggers_replace = local.services

  provisioner "local-exec" {
    command = "sleep ${var.api_propagation_seconds}"
  }

  depends_on = [google_project_service.enabled]
}

# The project number names the service agents (iam.tf, pubsub.tf).
data "google_project" "this" {
  project_id = var.project_id
}
