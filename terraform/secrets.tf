#-- Secrets --#

# Environment variable => Secret Manager secret id. Terraform creates the
# secrets, never their values: add a version out of band, before the first
# deploy of a function that reads it, e.g.
#   printf %s "$VALUE" | gcloud secrets versions add hotmart-client-id --data-file=-
# Functions read them as environment variables (functions.tf,
# secret_environment_variables), resolved when an instance starts.
locals {
  secrets = {
    HOTMART_CLIENT_ID     = "hotmart-client-id"
    HOTMART_CLIENT_SECRET = "hotmart-client-secret"
    HOTMART_BASIC_TOKEN   = "hotmart-basic-token"
  }
}

resource "google_secret_manager_secret" "secret" {
  for_each = local.secrets

  secret_id = each.value
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# Each function reads only the secrets its spec lists.
# https://cloud.google.com/iam/docs/roles-permissions/secretmanager#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "function_accessor" {
  for_each = local.function_secrets

  secret_id = google_secret_manager_secret.secret[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function[each.value.function].member
}
