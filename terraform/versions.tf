#-- Terraform and provider versions --#

# One provider only. The function source archive is built by `make package`
# (terraform/tfcheck/sourcezip) and uploaded by Terraform itself
# (google_storage_bucket_object.source in build.tf), so neither
# hashicorp/archive nor google-beta is needed. The waits of apis.tf and
# iam.tf are `terraform_data` resources, which are built into Terraform, not a
# provider. terraform/tfcheck checks this configuration against the schema of
# the provider version pinned here, offline.
terraform {
  # 1.11: write-only arguments (secrets.tf sends secret values without
  # keeping them in the state).
  required_version = ">= 1.11"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
  }

  # State in a Cloud Storage bucket that `make bootstrap` creates before the
  # first apply (docs/deploy.md): terraform init
  #   -backend-config=bucket=PROJECT-tfstate -backend-config=prefix=pipeline
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}
