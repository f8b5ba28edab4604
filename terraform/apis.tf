#-- APIs --#

locals {
  services = [
    "artifactregistry.googleapis.com",     # Images Cloud Build makes from the function source.
    "cloudbuild.googleapis.com",           # Builds the functions.
    "cloudfunctions.googleapis.com",       # Cloud Functions 2nd gen.
    "cloudscheduler.googleapis.com",       # Runs the detector on a schedule.
    "eventarc.googleapis.com",             # Object-finalized triggers.
    "firestore.googleapis.com",            # Lesson state.
    "iam.googleapis.com",                  # Service accounts.
    "iamcredentials.googleapis.com",       # OIDC tokens for push, scheduler and workflow calls.
    "logging.googleapis.com",              # Function and workflow logs.
    "pubsub.googleapis.com",               # Lesson events.
    "run.googleapis.com",                  # The Cloud Run services behind the functions.
    "secretmanager.googleapis.com",        # Hotmart credentials.
    "storage.googleapis.com",              # Buckets.
    "workflows.googleapis.com",            # lesson-pipeline.
    "cloudresourcemanager.googleapis.com", # Project IAM members.
  ]
}

resource "google_project_service" "enabled" {
  for_each = toset(local.services)

  project = var.project_id
  service = each.value
  # Other things in the project may use these APIs too.
  disable_on_destroy = false
}

# The project number names the Pub/Sub service agent (iam.tf).
data "google_project" "this" {
  project_id = var.project_id
}
