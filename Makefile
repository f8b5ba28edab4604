# The two commands a fresh machine needs are `make run` and `make test`;
# both first install what is missing (scripts/install-deps.sh).
GO ?= go
PKGS ?= ./...

.PHONY: all deps run test bench load build vet fmt-check tf-fmt clean package need-project tf-init plan deploy bootstrap cloudbuild

all: build

deps:
	@bash scripts/install-deps.sh

## run: the whole pipeline on the bundled sample course, offline
run: deps
	$(GO) run ./cmd/pipeline run

## test: every test (unit, emulator-backed integration, end to end)
test: deps fmt-check vet
	$(GO) test -count=1 -timeout 14m $(PKGS)

## bench: performance figures, as ratios against baselines measured in the same run
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./bench/ ./shared/chunk/

## load: issue 9's proof at full size: 100 lessons without faults (the targets;
## the platform usage `pipeline cost` reads), then under every fault at once
## with the poison inputs (make test runs the same with 10 lessons)
load: deps
	$(GO) run ./cmd/pipeline load --lessons 100
	$(GO) run ./cmd/pipeline load --lessons 100 --chaos all --poison

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@if command -v terraform >/dev/null; then TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive terraform; fi

clean:
	rm -rf bin .cache

## ---- Deploying (docs/deploy.md) ----
# PROJECT is the Google Cloud project; the Terraform state lives in
# gs://$(STATE_BUCKET)/$(STATE_PREFIX) (make bootstrap creates the bucket).
# Secret values go in as TF_VAR_hotmart_client_id, ... on the apply that
# creates them; other variables in terraform/terraform.tfvars.
PROJECT ?=
REGION ?= us-central1
STATE_BUCKET ?= $(PROJECT)-tfstate
STATE_PREFIX ?= pipeline
TF ?= terraform
TF_DIR ?= terraform
SOURCE_ZIP ?= bin/source.zip
TF_VARS = -var project_id=$(PROJECT) -var state_bucket=$(STATE_BUCKET) -var source_archive=$(abspath $(SOURCE_ZIP))

need-project:
	@test -n "$(PROJECT)" || { echo "set PROJECT=<your Google Cloud project id>"; exit 1; }

## package: the function source archive (bin/source.zip), reproducible
package:
	$(GO) run ./terraform/tfcheck/sourcezip -o $(SOURCE_ZIP)

tf-init: need-project
	$(TF) -chdir=$(TF_DIR) init -input=false -reconfigure \
		-backend-config=bucket=$(STATE_BUCKET) -backend-config=prefix=$(STATE_PREFIX)

## plan: package, then terraform plan against the project (writes bin/tfplan)
plan: need-project package tf-init
	$(TF) -chdir=$(TF_DIR) plan -input=false $(TF_VARS) -out=$(abspath bin/tfplan)

## deploy: package, then terraform apply with the archive
deploy: need-project package tf-init
	$(TF) -chdir=$(TF_DIR) apply -input=false $(TF_VARS)

## bootstrap: once per project, before the first deploy: the APIs Terraform
## needs to start, the state bucket, and the service agents Terraform grants
## roles to but cannot create (google-beta only)
bootstrap: need-project
	gcloud services enable serviceusage.googleapis.com cloudresourcemanager.googleapis.com \
		storage.googleapis.com iam.googleapis.com pubsub.googleapis.com speech.googleapis.com \
		aiplatform.googleapis.com --project $(PROJECT)
	gcloud storage buckets describe gs://$(STATE_BUCKET) --project $(PROJECT) >/dev/null 2>&1 || \
		gcloud storage buckets create gs://$(STATE_BUCKET) --project $(PROJECT) --location $(REGION) \
			--uniform-bucket-level-access --public-access-prevention
	gcloud storage buckets update gs://$(STATE_BUCKET) --versioning
	for s in pubsub.googleapis.com speech.googleapis.com aiplatform.googleapis.com; do \
		gcloud beta services identity create --service=$$s --project $(PROJECT) || exit 1; \
	done

## cloudbuild: run cloudbuild.yaml in the project (tests and plan; APPLY=true applies)
APPLY ?= false
cloudbuild: need-project
	gcloud builds submit --project $(PROJECT) --config cloudbuild.yaml \
		--gcs-source-staging-dir gs://$(PROJECT)-source/staging \
		--substitutions _APPLY=$(APPLY),_STATE_BUCKET=$(STATE_BUCKET),_STATE_PREFIX=$(STATE_PREFIX)
