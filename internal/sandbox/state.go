package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// state is everything the sandbox knows. Every field is guarded by Sandbox.mu and
// saved as JSON in --data-dir; object bytes live in the blob store.
type state struct {
	Buckets  map[string]*bucket   `json:"buckets"`
	Accounts map[string]*account  `json:"accounts"`
	Sessions map[string]*session  `json:"sessions"`         // temporary access key id -> session
	Keys     map[string]*userKey  `json:"keys"`             // long-term access key id (AKIA...) -> user
	Jobs     map[string]*batchJob `json:"jobs,omitempty"`   // S3 Batch Operations jobs by id
	Topics   map[string]*topic    `json:"topics,omitempty"` // SNS topics by ARN
	// Glue databases, Athena workgroups and named queries, by ACCOUNT/REGION/name (or id)
	Glue         map[string]*glueDatabase `json:"glue,omitempty"`
	Workgroups   map[string]*workgroup    `json:"workgroups,omitempty"`
	NamedQueries map[string]*namedQuery   `json:"namedQueries,omitempty"`
	// EventBridge buses by ACCOUNT/REGION/name, with their rules
	Buses map[string]*eventBus `json:"buses,omitempty"`
	// Lambda functions by ACCOUNT/REGION/name
	Functions map[string]*lambdaFunction `json:"functions,omitempty"`
}

// userKey is an IAM user's long-term access key.
type userKey struct {
	Account string    `json:"account"`
	User    string    `json:"user"`
	Secret  string    `json:"secret"`
	Created time.Time `json:"created"`
}

// user is an IAM user: its inline policies apply to requests signed with its keys.
type user struct {
	Name    string            `json:"name"`
	ID      string            `json:"id"`
	Path    string            `json:"path"`
	Created time.Time         `json:"created"`
	Inline  map[string]string `json:"inline"`
}

type account struct {
	ID      string            `json:"id"`
	Roles   map[string]*role  `json:"roles"`  // by name
	Users   map[string]*user  `json:"users"`  // by name
	Trails  map[string]*trail `json:"trails"` // by ARN
	Stacks  map[string]*stack `json:"stacks"` // by stack id
	Exports map[string]string `json:"exports"`
}

type role struct {
	Name        string            `json:"name"`
	ID          string            `json:"id"`
	Path        string            `json:"path"`
	Description string            `json:"description,omitempty"`
	Created     time.Time         `json:"created"`
	Trust       string            `json:"trust"`
	Inline      map[string]string `json:"inline"` // policy name -> document
	Tags        []tag             `json:"tags,omitempty"`
	MaxSession  int               `json:"maxSession"`
}

type tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// session is a set of temporary credentials from AssumeRole.
type session struct {
	Account string    `json:"account"`
	Role    string    `json:"role"`
	RoleID  string    `json:"roleId"`
	Name    string    `json:"name"`
	Secret  string    `json:"secret"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

type bucket struct {
	Name         string                      `json:"name"`
	Owner        string                      `json:"owner"`
	Region       string                      `json:"region"`
	Created      time.Time                   `json:"created"`
	Versioning   string                      `json:"versioning,omitempty"` // "", Enabled, Suspended
	ObjectLock   bool                        `json:"objectLock"`
	LockRule     *lockRule                   `json:"lockRule,omitempty"`
	Policy       string                      `json:"policy,omitempty"` // as stored: role principals as unique IDs
	PAB          *publicAccessBlock          `json:"pab,omitempty"`
	Ownership    string                      `json:"ownership,omitempty"`
	Encryption   string                      `json:"encryption,omitempty"`   // raw XML
	Notification string                      `json:"notification,omitempty"` // raw XML
	Replication  *replicationConfig          `json:"replication,omitempty"`
	Tagging      string                      `json:"tagging,omitempty"`
	Inventory    map[string]*inventoryConfig `json:"inventory,omitempty"` // S3 Inventory configurations by id
	Objects      map[string][]*version       `json:"objects"`             // key -> versions, oldest first
	Uploads      map[string]*upload          `json:"uploads"`

	policyDoc    *policy.Document    // parsed Policy, rebuilt on load
	notification *notificationConfig // parsed Notification, rebuilt on load
	sorted       []string            // the keys of Objects in order; nil once a key comes or goes
}

type lockRule struct {
	Mode  string `json:"mode"`
	Days  int    `json:"days,omitempty"`
	Years int    `json:"years,omitempty"`
}

type publicAccessBlock struct {
	BlockPublicAcls       bool `json:"blockPublicAcls"`
	IgnorePublicAcls      bool `json:"ignorePublicAcls"`
	BlockPublicPolicy     bool `json:"blockPublicPolicy"`
	RestrictPublicBuckets bool `json:"restrictPublicBuckets"`
}

// version is one object version or delete marker.
type version struct {
	Key             string            `json:"key"`
	ID              string            `json:"id"` // "null" when versioning was never enabled
	DeleteMarker    bool              `json:"deleteMarker,omitempty"`
	Size            int64             `json:"size"`
	ETag            string            `json:"etag"`
	LastModified    time.Time         `json:"lastModified"`
	Owner           string            `json:"owner"`
	ContentType     string            `json:"contentType,omitempty"`
	ContentEncoding string            `json:"contentEncoding,omitempty"`
	CacheControl    string            `json:"cacheControl,omitempty"`
	Disposition     string            `json:"disposition,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"` // lower-case names without x-amz-meta-
	StorageClass    string            `json:"storageClass,omitempty"`
	SSE             string            `json:"sse,omitempty"` // AES256 or aws:kms
	KMSKey          string            `json:"kmsKey,omitempty"`
	Checksums       map[string]string `json:"checksums,omitempty"` // CRC32 -> base64
	Replication     string            `json:"replication,omitempty"`
	ReplicationWhy  string            `json:"replicationWhy,omitempty"` // failure reason, sandbox-only
	LockMode        string            `json:"lockMode,omitempty"`
	RetainUntil     time.Time         `json:"retainUntil,omitzero"`
	LegalHold       bool              `json:"legalHold,omitempty"`
	Tagging         string            `json:"tagging,omitempty"`
	Parts           int               `json:"parts,omitempty"`
}

type upload struct {
	ID      string            `json:"id"`
	Key     string            `json:"key"`
	Created time.Time         `json:"created"`
	Header  map[string]string `json:"header"` // object headers given at initiation
	Parts   map[int]*version  `json:"parts"`
}

func newState() *state {
	return &state{Buckets: map[string]*bucket{}, Accounts: map[string]*account{}, Sessions: map[string]*session{}, Keys: map[string]*userKey{}, Topics: map[string]*topic{},
		Glue: map[string]*glueDatabase{}, Workgroups: map[string]*workgroup{}, NamedQueries: map[string]*namedQuery{}, Buses: map[string]*eventBus{}, Functions: map[string]*lambdaFunction{}}
}

func (st *state) account(id string) *account {
	a := st.Accounts[id]
	if a == nil {
		a = &account{ID: id, Roles: map[string]*role{}, Users: map[string]*user{}, Trails: map[string]*trail{}, Stacks: map[string]*stack{}, Exports: map[string]string{}}
		st.Accounts[id] = a
	}
	return a
}

// principalByID finds the ARN of a role or user by its unique ID, across accounts.
func (st *state) principalByID(id string) string {
	for acct, a := range st.Accounts {
		for _, r := range a.Roles {
			if r.ID == id {
				return "arn:aws:iam::" + acct + ":role" + r.Path + r.Name
			}
		}
		for _, u := range a.Users {
			if u.ID == id {
				return "arn:aws:iam::" + acct + ":user" + u.Path + u.Name
			}
		}
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// randomID returns prefix followed by n upper-case characters, like AWS's IDs.
func randomID(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	var sb strings.Builder
	sb.WriteString(prefix)
	for _, c := range b {
		sb.WriteByte(idAlphabet[int(c)%len(idAlphabet)])
	}
	return sb.String()
}

// versionID returns an opaque S3-style version id.
func versionID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._"
	b := make([]byte, 32)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
