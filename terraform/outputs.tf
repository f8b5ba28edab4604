#-- Outputs --#

# What an operator needs: where things are, and the commands that use them.
# No output reads a secret's value (terraform/tfcheck checks it).

output "function_urls" {
  description = "URL of each function (private: callers need an OIDC token and roles/run.invoker)."
  value       = { for name, f in google_cloudfunctions2_function.function : name => f.service_config[0].uri }
}

output "function_service_accounts" {
  description = "Runtime identity of each function."
  value       = { for name, sa in google_service_account.function : name => sa.email }
}

output "buckets" {
  description = "Bucket names: raw (videos under lessons/, deleted after raw_retention_days; producer masters under the ingest prefix), artifacts, source (function archives)."
  value = {
    raw       = google_storage_bucket.raw.name
    artifacts = google_storage_bucket.artifacts.name
    source    = google_storage_bucket.source.name
  }
}

output "source_object" {
  description = "The function source archive the functions are built from."
  value       = "gs://${google_storage_bucket_object.source.bucket}/${google_storage_bucket_object.source.name}"
}

output "scheduler_jobs" {
  description = "Cloud Scheduler jobs by function (detector: detection; sweeper: sweep)."
  value       = { for name, j in google_cloud_scheduler_job.job : name => j.name }
}

output "run_detection_now" {
  description = "Runs the detector now, as its schedule would."
  value       = "gcloud scheduler jobs run ${google_cloud_scheduler_job.job["detector"].name} --location ${var.region} --project ${var.project_id}"
}

output "topics" {
  description = "Pub/Sub topic ids by name."
  value       = { for name, t in google_pubsub_topic.topic : name => t.id }
}

output "subscriptions" {
  description = "Push subscriptions of ours: name => the function it feeds."
  value       = { for name, s in local.subscriptions : name => s.function }
}

output "dead_letter_topics" {
  description = "Dead-letter topic => the subscription whose undeliverable messages it takes."
  value       = local.dead_letter_topics
}

output "dead_letter_hold_subscriptions" {
  description = "Dead-letter topic => the pull subscription keeping its messages until `pipeline redrive <topic>` moves them back (docs/deploy.md)."
  value       = { for topic, s in google_pubsub_subscription.dead_letter_hold : topic => s.name }
}

output "secret_ids" {
  description = "Secret Manager secret ids by environment variable (names only; the values are never in Terraform's state or outputs)."
  value       = { for env, s in google_secret_manager_secret.secret : env => s.secret_id }
}

output "workflow_id" {
  description = "The lesson-pipeline workflow."
  value       = google_workflows_workflow.lesson_pipeline.id
}

output "deployer_service_account" {
  description = "The account cloudbuild.yaml runs as (its serviceAccount)."
  value       = google_service_account.deployer.email
}

output "dashboard_url" {
  description = "The pipeline's Cloud Monitoring dashboard."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", google_monitoring_dashboard.pipeline.id), 3)}?project=${var.project_id}"
}

output "alert_policies" {
  description = "Alert policies by name."
  value = {
    dead_letters         = google_monitoring_alert_policy.dead_letters.name
    oldest_unacked       = google_monitoring_alert_policy.oldest_unacked.name
    function_errors      = google_monitoring_alert_policy.function_errors.name
    workflow_failed      = google_monitoring_alert_policy.workflow_failed.name
    lesson_stuck         = google_monitoring_alert_policy.lesson_stuck.name
    detection_incomplete = google_monitoring_alert_policy.detection_incomplete.name
  }
}
