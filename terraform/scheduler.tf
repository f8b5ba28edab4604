#-- Detection schedule --#

# Calls the private detector with an OIDC token of the detector's trigger
# identity (which holds roles/run.invoker on it, iam.tf).
resource "google_cloud_scheduler_job" "detection" {
  name        = "detection"
  description = "Runs the detector: reads Hotmart, emits lesson-discovered events."
  region      = var.region
  schedule    = var.detection_schedule
  time_zone   = var.detection_time_zone
  # How long the scheduler waits for the detector's answer (HTTP targets allow
  # up to 30 minutes).
  attempt_deadline = "${local.functions.detector.timeout}s"

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function["detector"].service_config[0].uri
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({ trigger = "schedule" }))

    oidc_token {
      service_account_email = google_service_account.trigger["detector"].email
      audience              = google_cloudfunctions2_function.function["detector"].service_config[0].uri
    }
  }

  # A failed run is retried once; the next scheduled run catches up anyway.
  retry_config {
    retry_count          = 1
    min_backoff_duration = "60s"
  }

  depends_on = [google_cloud_run_v2_service_iam_member.trigger_invoker]
}
