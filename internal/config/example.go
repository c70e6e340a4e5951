package config

// Example is the commented file `trailkeeper init` writes.
const Example = `# trailkeeper.yaml: what the cross-account CloudTrail archive should look like.
# 'trailkeeper plan' shows what differs from it; 'trailkeeper apply' closes the difference.

archive:
  account_id: "999999999999"          # the log-archive account (quote ids: YAML would drop a leading zero)
  region: ap-northeast-1
  bucket: aggregation-cloudtrail-logs-999999999999
  profile: log-archive                # a profile in ~/.aws/config (SSO works), or role_arn:, or neither for the default chain
  object_lock:                        # default retention of every archived log version
    mode: GOVERNANCE                  # COMPLIANCE cannot be shortened or removed by anyone, root included:
    days: 400                         #   apply refuses it without --allow-compliance
  storage_class: STANDARD             # the cheapest for CloudTrail's small files: IA and Glacier IR bill each as 128 KB
  # inventory_bucket: trailkeeper-inventory-999999999999   # a daily S3 Inventory report of the archive, for
  #                                    #   verify --state --inventory on archives too large to list nightly

replication:
  role_name: trailkeeper-replication  # the role trailkeeper creates in each source account
  time_control: true                  # Replication Time Control: 99.99% within 15 minutes, with metrics
  # replica_kms_key: arn:aws:kms:ap-northeast-1:999999999999:key/...   # needed only for KMS-encrypted trails

sources:
  - account_id: "111111111111"
    profile: member-a
    trail: Members                    # its bucket, key prefix, KMS key and regions are read from the trail
  # - account_id: "222222222222"
  #   role_arn: arn:aws:iam::222222222222:role/OrganizationAccountAccessRole
  #   region: us-east-1                # the trail's home region (default: archive.region)
  #   bucket: cm-members-cloudtrail-222222222222   # instead of trail: the single trail writing here

# alerts:                              # a failed replication reaches a person within minutes (off unless given)
#   subscribe: [ops@example.com]       # email addresses and https URLs; each confirms once (status names who has not)
#   # topics: [arn:aws:sns:ap-northeast-1:999999999999:ops]   # existing topics of the archive account, one per region

# watch: {}                            # with alerts: a StopLogging, a deleted replication rule or a changed role in a
#                                      # source account reaches the alert topic as it happens, and an hourly
#                                      # function tells when status changes (docs/watch.md)
#   # digests_within: 2h                 # a trail with no new digest for longer is called stopped

# athena:                              # apply creates the Glue tables and an Athena workgroup over the archive
#   results: s3://aggregation-query-results-999999999999/athena/   # where Athena writes results
#   # parquet: s3://trailkeeper-index-999999999999/archive          # where 'trailkeeper index --to' publishes

# endpoint_url: http://127.0.0.1:4566  # only for the sandbox or moto; AWS_ENDPOINT_URL works too
`
