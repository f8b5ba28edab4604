#-- Buckets --#

# Bucket names are global: they start with the project id. No force_destroy:
# `terraform destroy` stops at a bucket that still holds objects.

# Downloaded lesson videos (lessons/{lessonId}/v{version}/source.{ext}) and
# the producer's master files
# (MEDIA_INGEST_PREFIX, the producer's only copy: only readers hold a grant
# outside lessons/, iam.tf). In var.region: the Eventarc trigger on object
# finalize must be in the bucket's region.
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

  depends_on = [terraform_data.apis_ready]
}

# Transcripts, analyses, enrichments, knowledge documents and chunks. Kept:
# they make replays cheap. Also the audio segments the transcriber cuts
# (lessons/{lessonId}/v{version}/audio/seg-NNN.flac): here rather than
# beside the video because every object finalized in the raw bucket is an
# event for the starter.
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

  # Audio segments are only Speech-to-Text's input, made again from the
  # video when a replay needs them: they go with the raw video.
  lifecycle_rule {
    condition {
      age            = var.raw_retention_days
      matches_prefix = ["lessons/"]
      matches_suffix = [".flac", ".ogg"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [terraform_data.apis_ready]
}

# Function source archives: Terraform uploads `make package`'s archive as
# source/<sha256>.zip (build.tf) and deletes the one it replaces.
resource "google_storage_bucket" "source" {
  name                        = "${var.project_id}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels

  # Archives have no lifecycle rule: the one in use must stay (Terraform
  # removes the old one once the functions have moved to the new). The
  # sources `make cloudbuild` stages under staging/ go after a week.
  lifecycle_rule {
    condition {
      age            = 7
      matches_prefix = ["staging/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [terraform_data.apis_ready]
}

locals {
  # Bucket keys used by local.functions[*].buckets.
  bucket_names = {
    raw       = google_storage_bucket.raw.name
    artifacts = google_storage_bucket.artifacts.name
  }
}
