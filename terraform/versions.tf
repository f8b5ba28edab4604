#-- Terraform and provider versions --#

# One provider only: the function source archive is built and uploaded by
# Cloud Build (cloudbuild.yaml), so neither hashicorp/archive nor google-beta
# is needed. terraform/tfcheck checks this configuration against the schema of
# the provider version pinned here, offline.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
