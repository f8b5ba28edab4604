#-- Schedules --#

# One Cloud Scheduler job per function whose spec has a schedule: the
# detector ("detection") and the sweeper ("sweep"). Each calls its private
# function with an OIDC token of the function's trigger identity (which holds
# roles/run.invoker on it, iam.tf). Run one now with
#   gcloud scheduler jobs run detection --location REGION
resource "google_cloud_scheduler_job" "job" {
  for_each = local.scheduled_functions

  name        = each.value.schedule.job
  description = each.value.description
  region      = var.region
  schedule    = each.value.schedule.cron
  time_zone   = var.schedule_time_zone
  # How long the scheduler waits for the answer (HTTP targets: 15 s to 30 min).
  attempt_deadline = "${min(each.value.timeout, 1800)}s"

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({ trigger = "schedule" }))

    oidc_token {
      service_account_email = google_service_account.trigger[each.key].email
      audience              = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    }
  }

  retry_config {
    retry_count          = each.value.schedule.retry_count
    min_backoff_duration = "60s"
  }

  depends_on = [google_cloud_run_v2_service_iam_member.trigger_invoker]
}
