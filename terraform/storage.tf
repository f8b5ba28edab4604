#-- Buckets --#

# Bucket names are global: they start with the project id. No force_destroy:
# `terraform destroy` stops at a bucket that still holds objects.

# Downloaded lesson videos (lessons/{lessonId}/v{version}/source.{ext}) and
# the producer's master files (MEDIA_INGEST_PREFIX). In var.region: the
# Eventarc trigger on object finalize must be in the bucket's region.
resource "google_storage_bucket" "raw" {
  name                        = "${var.project_id}-raw"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels

  # Raw video is large and can be downloaded again: delete it after
  # var.raw_retention_days. Only under lessons/, so the producer's masters in
  # the ingest prefix (the only copy we are given) stay.
  lifecycle_rule {
    condition {
      age            = var.raw_retention_days
      matches_prefix = ["lessons/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Transcripts, analyses, enrichments, knowledge documents and chunks. Kept:
# they make replays cheap.
resource "google_storage_bucket" "artifacts" {
  name                        = "${var.project_id}-artifacts"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels

  # Versions guard against a bad replay overwriting good artifacts; old
  # versions go after 30 days.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Function source archives, uploaded by cloudbuild.yaml as source/<commit>.zip.
resource "google_storage_bucket" "source" {
  name                        = "${var.project_id}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels

  # No lifecycle rule: a function rebuilds from its archive when its
  # configuration changes, so the archive in use must stay.

  depends_on = [google_project_service.enabled]
}

locals {
  # Bucket keys used by local.functions[*].buckets.
  bucket_names = {
    raw       = google_storage_bucket.raw.name
    artifacts = google_storage_bucket.artifacts.name
  }
}
