#-- Secrets --#

# Environment variable => Secret Manager secret id. Required ones always;
# the notifier's optional ones when their channel is switched on
# (notify_slack, smtp_user): config.Notifier works without them.
locals {
  secrets = merge(
    {
      HOTMART_CLIENT_ID     = "hotmart-client-id"
      HOTMART_CLIENT_SECRET = "hotmart-client-secret"
      HOTMART_BASIC_TOKEN   = "hotmart-basic-token"
      OPENAI_API_KEY        = "openai-api-key"
    },
    var.notify_slack ? { SLACK_WEBHOOK_URL = "slack-webhook-url" } : {},
    var.smtp_user != "" ? { SMTP_PASSWORD = "smtp-password" } : {},
  )

  # The values, from sensitive variables (variables.tf). Sensitive as a
  # whole: never in a plan's output, and no output reads it.
  secret_values = {
    HOTMART_CLIENT_ID     = var.hotmart_client_id
    HOTMART_CLIENT_SECRET = var.hotmart_client_secret
    HOTMART_BASIC_TOKEN   = var.hotmart_basic_token
    OPENAI_API_KEY        = var.openai_api_key
    SLACK_WEBHOOK_URL     = var.slack_webhook_url
    SMTP_PASSWORD         = var.smtp_password
  }
}

resource "google_secret_manager_secret" "secret" {
  for_each = local.secrets

  secret_id = each.value
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [terraform_data.apis_ready]
}

# Cloud Run reads a secret when an instance starts and refuses to start if
# it cannot, so every secret gets its version here, in the same apply,
# before the functions that read it (they name this version, functions.tf).
# The value is write-only: sent to Secret Manager, never kept in the state
# or shown in a plan. An apply without the values (Cloud Build's) changes
# nothing here; the apply that creates a version needs its value
# (TF_VAR_hotmart_client_id, ...; docs/deploy.md). Raising the secret's
# number in var.secret_value_versions sends a new value: a new version, the
# functions redeploy on it, and the old one is disabled, not destroyed.
resource "google_secret_manager_secret_version" "value" {
  for_each = local.secrets

  secret                 = google_secret_manager_secret.secret[each.key].id
  secret_data_wo         = local.secret_values[each.key]
  secret_data_wo_version = lookup(var.secret_value_versions, each.key, 1)
  deletion_policy        = "DISABLE"

  lifecycle {
    create_before_destroy = true
  }
}

# roles/secretmanager.secretAccessor: https://cloud.google.com/iam/docs/roles-permissions/secretmanager#secretmanager.secretAccessor
# Why: each function reads the secrets its spec lists, and each secret is
# readable by those functions' identities alone (no project-level grant).
resource "google_secret_manager_secret_iam_member" "function_accessor" {
  for_each = local.function_secrets

  secret_id = google_secret_manager_secret.secret[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function[each.value.function].member
}
