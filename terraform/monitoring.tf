#-- Log-based metrics --#

# The functions log Cloud Logging JSON (shared/logging): jsonPayload.message,
# severity, and the lessonId, version and stage of the lesson. Each metric
# below matches exact messages the Go code logs; terraform/tfcheck
# (TestLogMetricMessagesExist) fails when a message quoted here is no longer
# logged, or is logged at another severity than the filter asks for, so a
# reworded log line cannot silently empty a metric or an alert.
#
#   metric                      messages (where)
#   lessons_synced              "sync done" (shared/vectorsync, syncer)
#   lessons_failed              "download failed", "transcription failed",
#                               "transcription failed: the workflow gave up",
#                               "analysis failed", "analysis failed: the workflow gave up",
#                               "enrichment failed", "sync failed" (each stage,
#                               failed for good), "sweep: stage failed for good"
#                               (shared/sweep: out of attempts while stuck)
#   stage_redriven              "sweep: stage re-driven" (shared/sweep)
#   detection_runs_incomplete   "detection run finished" (detect.FinishedMessage)
#                               with outcome partial or failed
#   detection_run_duration      "detection run finished", durationSeconds
#   stage_duration              Cloud Run's request log of each stage function
#                               (httpRequest.latency): the Go code logs no
#                               duration of its own per stage.
locals {
  log_resource = "resource.type=\"cloud_run_revision\""

  # A filter on messages: jsonPayload.message=("a" OR "b").
  failed_messages = [
    "download failed",
    "transcription failed",
    "transcription failed: the workflow gave up",
    "analysis failed",
    "analysis failed: the workflow gave up",
    "enrichment failed",
    "sync failed",
    "sweep: stage failed for good",
  ]
  detection_finished = "detection run finished"

  log_filters = {
    lessons_synced = join(" AND ", [
      local.log_resource,
      "resource.labels.service_name=\"syncer\"",
      "jsonPayload.message=${jsonencode("sync done")}",
    ])
    lessons_failed = join(" AND ", [
      local.log_resource,
      "severity=ERROR",
      "jsonPayload.message=(${join(" OR ", [for m in local.failed_messages : jsonencode(m)])})",
    ])
    stage_redriven = join(" AND ", [
      local.log_resource,
      "resource.labels.service_name=\"sweeper\"",
      "severity=WARNING",
      "jsonPayload.message=${jsonencode("sweep: stage re-driven")}",
    ])
    detection_runs_incomplete = join(" AND ", [
      local.log_resource,
      "resource.labels.service_name=\"detector\"",
      "jsonPayload.message=${jsonencode(local.detection_finished)}",
      "jsonPayload.outcome=(\"partial\" OR \"failed\")",
    ])
    detection_run_duration = join(" AND ", [
      local.log_resource,
      "resource.labels.service_name=\"detector\"",
      "jsonPayload.message=${jsonencode(local.detection_finished)}",
    ])
    stage_duration = join(" AND ", [
      local.log_resource,
      "log_id(\"run.googleapis.com/requests\")",
      "resource.labels.service_name=(${join(" OR ", [for name in local.stage_functions : jsonencode(name)])})",
    ])
  }

  # The functions that run a lesson's stages.
  stage_functions = ["downloader", "starter", "transcriber", "analyzer", "enricher", "syncer"]
}

resource "google_logging_metric" "lessons_synced" {
  name        = "lessons_synced"
  description = "Lesson versions published into their school's vector store."
  filter      = local.log_filters.lessons_synced

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Lessons synced"
  }

  depends_on = [terraform_data.apis_ready]
}

resource "google_logging_metric" "lessons_failed" {
  name        = "lessons_failed"
  description = "Lesson versions whose stage failed for good, by stage."
  filter      = local.log_filters.lessons_failed

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Lessons failed"
    labels {
      key         = "stage"
      value_type  = "STRING"
      description = "The stage (or the sweeper's step) that failed."
    }
  }
  label_extractors = {
    stage = "EXTRACT(jsonPayload.stage)"
  }

  depends_on = [terraform_data.apis_ready]
}

resource "google_logging_metric" "stage_redriven" {
  name        = "stage_redriven"
  description = "Stages the sweeper re-drove: a lease ended with the work unfinished, or an event waited past PENDING_AFTER."
  filter      = local.log_filters.stage_redriven

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Stages re-driven"
    labels {
      key        = "stage"
      value_type = "STRING"
    }
  }
  label_extractors = {
    stage = "EXTRACT(jsonPayload.stage)"
  }

  depends_on = [terraform_data.apis_ready]
}

resource "google_logging_metric" "detection_runs_incomplete" {
  name        = "detection_runs_incomplete"
  description = "Detection runs that ended partial or failed (the detector answers 207 or 5xx)."
  filter      = local.log_filters.detection_runs_incomplete

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Detection runs incomplete"
    labels {
      key        = "outcome"
      value_type = "STRING"
    }
  }
  label_extractors = {
    outcome = "EXTRACT(jsonPayload.outcome)"
  }

  depends_on = [terraform_data.apis_ready]
}

resource "google_logging_metric" "detection_run_duration" {
  name            = "detection_run_duration"
  description     = "How long each detection run took (the detect stage)."
  filter          = local.log_filters.detection_run_duration
  value_extractor = "EXTRACT(jsonPayload.durationSeconds)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "Detection run duration"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [terraform_data.apis_ready]
}

resource "google_logging_metric" "stage_duration" {
  name            = "stage_duration"
  description     = "How long each delivery to a stage function took, by stage (Cloud Run request latency)."
  filter          = local.log_filters.stage_duration
  value_extractor = "REGEXP_EXTRACT(httpRequest.latency, \"([0-9.]+)s\")"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "Stage duration"
    labels {
      key        = "stage"
      value_type = "STRING"
    }
  }
  label_extractors = {
    stage = "EXTRACT(resource.labels.service_name)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 20
      growth_factor      = 2
      scale              = 0.1
    }
  }

  depends_on = [terraform_data.apis_ready]
}

# An alert policy on a log-based metric made moments before fails with "Cannot
# find metric(s) ... If a metric was created recently, it could take up to
# 10 minutes to become available". The policies wait here; the wait runs
# beside the function builds, once, and again when a metric is added.
resource "terraform_data" "log_metrics_ready" {
  triggers_replace = sort(keys(local.log_filters))

  provisioner "local-exec" {
    command = "sleep ${var.metric_propagation_seconds}"
  }

  depends_on = [
    google_logging_metric.lessons_synced,
    google_logging_metric.lessons_failed,
    google_logging_metric.stage_redriven,
    google_logging_metric.detection_runs_incomplete,
    google_logging_metric.detection_run_duration,
    google_logging_metric.stage_duration,
  ]
}

#-- Notification --#

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == "" ? 0 : 1

  display_name = "Course pipeline alerts"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }

  depends_on = [terraform_data.apis_ready]
}

locals {
  alert_channels = google_monitoring_notification_channel.email[*].id

  # Regular expressions of our functions, of the push subscriptions that
  # feed them, and of the -hold subscriptions that keep dead letters, for
  # filters.
  functions_regex     = join("|", sort(keys(local.functions)))
  subscriptions_regex = join("|", sort(keys(local.subscriptions)))
  hold_regex          = join("|", sort([for t, _ in local.dead_letter_topics : "${t}-hold"]))
  runbook             = "docs/deploy.md in the pipeline's repository"
}

#-- Alert policies --#

resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "Pipeline: dead letters present"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.alert_channels
  user_labels           = var.labels

  # Every dead letter waits in <dead-letter topic>-hold until an operator
  # moves it back (or it ages out after dead_letter_retention): the incident
  # stays open while any is there.
  conditions {
    display_name = "Dead letters waiting in a -hold subscription"
    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.label.subscription_id=monitoring.regex.full_match(\"${local.hold_regex}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "60s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A subscription gave up on a message after its maximum deliveries (well above the stages' MAX_ATTEMPTS): a function kept failing or could not start. The notifier announces each dead letter; <dead-letter topic>-hold keeps it. Find the function's errors in its logs, fix, then move the messages back with `pipeline redrive <dead-letter topic>` (${local.runbook}, \"Draining a dead-letter topic\")."
  }

  depends_on = [terraform_data.apis_ready]
}

resource "google_monitoring_alert_policy" "oldest_unacked" {
  display_name          = "Pipeline: messages waiting too long"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.alert_channels
  user_labels           = var.labels

  conditions {
    display_name = "Oldest unacknowledged message older than ${var.oldest_unacked_alert_seconds} s"
    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.label.subscription_id=monitoring.regex.full_match(\"${local.subscriptions_regex}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.oldest_unacked_alert_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A push subscription holds a message it cannot deliver: its function is failing, cannot start (a secret, a grant) or is overwhelmed. (The -hold subscriptions of dead letters are left out: the dead-letter alert covers them.)"
  }

  depends_on = [terraform_data.apis_ready]
}

resource "google_monitoring_alert_policy" "function_errors" {
  display_name          = "Pipeline: function error rate"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.alert_channels
  user_labels           = var.labels

  conditions {
    display_name = "Share of 5xx answers above ${var.function_error_rate_alert}"
    condition_threshold {
      filter             = "resource.type=\"cloud_run_revision\" AND metric.type=\"run.googleapis.com/request_count\" AND metric.label.response_code_class=\"5xx\" AND resource.label.service_name=monitoring.regex.full_match(\"${local.functions_regex}\")"
      denominator_filter = "resource.type=\"cloud_run_revision\" AND metric.type=\"run.googleapis.com/request_count\" AND resource.label.service_name=monitoring.regex.full_match(\"${local.functions_regex}\")"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.function_error_rate_alert
      duration           = "900s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A function answers 5xx to a large share of its calls (Pub/Sub and the workflow retry them). Read its ERROR logs; \"cannot start\" means configuration, a secret or a grant."
  }

  depends_on = [terraform_data.apis_ready]
}

resource "google_monitoring_alert_policy" "workflow_failed" {
  display_name          = "Pipeline: lesson-pipeline executions failed"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.alert_channels
  user_labels           = var.labels

  conditions {
    display_name = "Failed executions of lesson-pipeline"
    condition_threshold {
      filter          = "resource.type=\"workflows.googleapis.com/Workflow\" AND metric.type=\"workflows.googleapis.com/finished_execution_count\" AND metric.label.status=\"FAILED\" AND resource.label.workflow_id=\"${local.workflow_name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "An execution failed: a branch gave up (its function recorded the lesson failed and announced it) or the workflow could not publish lesson-processed (the sweeper re-drives the lesson). gcloud workflows executions list lesson-pipeline --location REGION --filter state=FAILED."
  }

  depends_on = [terraform_data.apis_ready]
}

resource "google_monitoring_alert_policy" "lesson_stuck" {
  display_name          = "Pipeline: a lesson is stuck in a stage"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.alert_channels
  user_labels           = var.labels

  # The sweeper re-drives a stage only when it is stuck past its threshold:
  # running past its lease (DOWNLOAD_LEASE, PROCESS_LEASE, the stages'
  # leases) or waiting past PENDING_AFTER (var.pending_after) with nobody on
  # it. One incident per lesson, naming it.
  conditions {
    display_name = "The sweeper re-drove a stuck stage"
    condition_matched_log {
      filter = local.log_filters.stage_redriven
      label_extractors = {
        lesson_id = "EXTRACT(jsonPayload.lessonId)"
        stage     = "EXTRACT(jsonPayload.stage)"
        reason    = "EXTRACT(jsonPayload.reason)"
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
    notification_rate_limit {
      period = "3600s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A lesson's stage outlived its lease or waited past PENDING_AFTER, and the sweeper sent its event again (the label reason says which). Repeated, it fails for good after MAX_ATTEMPTS. Follow the lesson's trace (${local.runbook}, \"Following one lesson\")."
  }

  depends_on = [terraform_data.apis_ready]
}

resource "google_monitoring_alert_policy" "detection_incomplete" {
  display_name          = "Pipeline: detection run partial or failed"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.alert_channels
  user_labels           = var.labels

  conditions {
    display_name = "A detection run did not take everything in"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.detection_runs_incomplete.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.outcome"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A detection run ended partial or failed (the detector answered 207 or 5xx; Cloud Scheduler does not retry a 207). Its summary, in the runs collection and the detector's log line \"detection run finished\", says per course what happened. The next scheduled run tries again what was missed."
  }

  depends_on = [terraform_data.log_metrics_ready]
}

#-- Dashboard --#

locals {
  dashboard_tiles = [
    { title = "Lessons synced", plot = "STACKED_BAR", filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.lessons_synced.name}\"", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group = [], period = "3600s" },
    { title = "Lessons failed, by stage", plot = "STACKED_BAR", filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.lessons_failed.name}\"", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group = ["metric.label.\"stage\""], period = "3600s" },
    { title = "Stage duration p95, by stage (s)", plot = "LINE", filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.stage_duration.name}\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", group = ["metric.label.\"stage\""], period = "3600s" },
    { title = "Stages re-driven by the sweeper", plot = "STACKED_BAR", filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.stage_redriven.name}\"", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group = ["metric.label.\"stage\""], period = "3600s" },
    { title = "Dead letters, by subscription", plot = "STACKED_BAR", filter = "resource.type=\"pubsub_subscription\" AND metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\"", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group = ["resource.label.\"subscription_id\""], period = "3600s" },
    { title = "Dead letters waiting in -hold subscriptions", plot = "STACKED_BAR", filter = "resource.type=\"pubsub_subscription\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.label.subscription_id=monitoring.regex.full_match(\"${local.hold_regex}\")", aligner = "ALIGN_MAX", reducer = "REDUCE_SUM", group = ["resource.label.\"subscription_id\""], period = "300s" },
    { title = "Oldest unacked message age (s)", plot = "LINE", filter = "resource.type=\"pubsub_subscription\" AND metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.label.subscription_id=monitoring.regex.full_match(\"${local.subscriptions_regex}\")", aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group = ["resource.label.\"subscription_id\""], period = "300s" },
    { title = "Function 5xx answers", plot = "STACKED_BAR", filter = "resource.type=\"cloud_run_revision\" AND metric.type=\"run.googleapis.com/request_count\" AND metric.label.response_code_class=\"5xx\" AND resource.label.service_name=monitoring.regex.full_match(\"${local.functions_regex}\")", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group = ["resource.label.\"service_name\""], period = "300s" },
    { title = "lesson-pipeline executions, by status", plot = "STACKED_BAR", filter = "resource.type=\"workflows.googleapis.com/Workflow\" AND metric.type=\"workflows.googleapis.com/finished_execution_count\" AND resource.label.workflow_id=\"${local.workflow_name}\"", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group = ["metric.label.\"status\""], period = "3600s" },
    { title = "Detection runs partial or failed", plot = "STACKED_BAR", filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.detection_runs_incomplete.name}\"", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", group = ["metric.label.\"outcome\""], period = "3600s" },
    { title = "Detection run duration p95 (s)", plot = "LINE", filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.detection_run_duration.name}\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", group = [], period = "21600s" },
  ]
}

resource "google_monitoring_dashboard" "pipeline" {
  dashboard_json = jsonencode({
    displayName = "Course knowledge pipeline"
    mosaicLayout = {
      columns = 48
      tiles = [
        for i, t in local.dashboard_tiles : {
          xPos   = (i % 2) * 24
          yPos   = floor(i / 2) * 16
          width  = 24
          height = 16
          widget = {
            title = t.title
            xyChart = {
              dataSets = [{
                plotType = t.plot
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = t.filter
                    aggregation = {
                      alignmentPeriod    = t.period
                      perSeriesAligner   = t.aligner
                      crossSeriesReducer = t.reducer
                      groupByFields      = t.group
                    }
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })

  depends_on = [terraform_data.log_metrics_ready]
}
