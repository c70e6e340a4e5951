// Package eventschema is the one schema of CloudTrail events that the index,
// query and the Athena tables share: Athena's CloudTrail column names and
// types (Athena User Guide, "Create the table for CloudTrail logs in Athena
// using partition projection"), with CloudTrail's own JSON keys beside them.
// It has no dependencies, so that the Athena DDL needs no DuckDB.
package eventschema

import "strings"

// Kind is how a field is stored.
type Kind int

const (
	String      Kind = iota // a JSON string (or any scalar, as its text)
	JSONText                // an object kept as its JSON text, as Athena keeps it (STRING)
	Struct                  // an object with known fields
	StructArray             // an array of objects with known fields
	StringMap               // an object of string values
)

// Field is a column, or a field of a struct.
type Field struct {
	Name   string // Athena's, lower case
	Key    string // CloudTrail's JSON key
	Kind   Kind
	Fields []Field // of a Struct, or of a StructArray's elements
}

func s(key string) Field { return Field{Name: strings.ToLower(key), Key: key, Kind: String} }
func j(key string) Field { return Field{Name: strings.ToLower(key), Key: key, Kind: JSONText} }
func st(key string, fields ...Field) Field {
	return Field{Name: strings.ToLower(key), Key: key, Kind: Struct, Fields: fields}
}

// Columns are the events table's columns, in the order of AWS's DDL.
var Columns = []Field{
	s("eventVersion"),
	st("userIdentity", s("type"), s("principalId"), s("arn"), s("accountId"), s("invokedBy"), s("accessKeyId"), s("userName"),
		st("onBehalfOf", s("userId"), s("identityStoreArn")),
		st("sessionContext",
			st("attributes", s("mfaAuthenticated"), s("creationDate")),
			st("sessionIssuer", s("type"), s("principalId"), s("arn"), s("accountId"), s("userName")),
			s("ec2RoleDelivery"),
			st("webIdFederationData", s("federatedProvider"), Field{Name: "attributes", Key: "attributes", Kind: StringMap}))),
	s("eventTime"), s("eventSource"), s("eventName"), s("awsRegion"), s("sourceIPAddress"), s("userAgent"),
	s("errorCode"), s("errorMessage"),
	j("requestParameters"), j("responseElements"), j("additionalEventData"),
	s("requestID"), s("eventID"), s("readOnly"),
	{Name: "resources", Key: "resources", Kind: StructArray, Fields: []Field{{Name: "arn", Key: "ARN"}, s("accountId"), s("type")}},
	s("eventType"), s("apiVersion"), s("recipientAccountId"), j("serviceEventDetails"), s("sharedEventID"),
	s("vpcEndpointId"), s("vpcEndpointAccountId"), s("eventCategory"),
	st("addendum", s("reason"), s("updatedFields"), s("originalRequestID"), s("originalEventID")),
	s("sessionCredentialFromConsole"), j("edgeDeviceDetails"),
	st("tlsDetails", s("tlsVersion"), s("cipherSuite"), s("clientProvidedHostHeader")),
}

// Partitions are the index's partition columns, and the Athena tables': the
// archive folder's account and region, and the day of eventTime (UTC).
var Partitions = []string{"account", "region", "day"}

// Views narrow events for the questions asked most, with the same text in
// DuckDB and Athena.
var Views = []View{
	{"errors", "SELECT * FROM events WHERE errorcode IS NOT NULL"},
	{"console_logins", "SELECT * FROM events WHERE eventname = 'ConsoleLogin'"},
}

// View is a view over events.
type View struct{ Name, SQL string }

// ViewsNamed are the views a statement names, as a whole word in any case.
func ViewsNamed(sql string) []View {
	var out []View
	lower := strings.ToLower(sql)
	for _, v := range Views {
		for at := 0; ; {
			i := strings.Index(lower[at:], v.Name)
			if i < 0 {
				break
			}
			i += at
			end := i + len(v.Name)
			if (i == 0 || !wordByte(lower[i-1])) && (end == len(lower) || !wordByte(lower[end])) {
				out = append(out, v)
				break
			}
			at = end
		}
	}
	return out
}

func wordByte(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// HiveType is the field's type in Athena's DDL.
func (f Field) HiveType() string {
	switch f.Kind {
	case Struct:
		return "STRUCT<" + hiveFields(f.Fields) + ">"
	case StructArray:
		return "ARRAY<STRUCT<" + hiveFields(f.Fields) + ">>"
	case StringMap:
		return "MAP<STRING,STRING>"
	}
	return "STRING"
}

func hiveFields(fs []Field) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.Name + ":" + f.HiveType()
	}
	return strings.Join(parts, ", ")
}

// ReadType is the DuckDB type that read_json reads the field's JSON with,
// under CloudTrail's keys (read_json matches keys as written).
func (f Field) ReadType() string {
	switch f.Kind {
	case JSONText:
		return "JSON"
	case Struct:
		return "STRUCT(" + readFields(f.Fields) + ")"
	case StructArray:
		return "STRUCT(" + readFields(f.Fields) + ")[]"
	case StringMap:
		return "MAP(VARCHAR, VARCHAR)"
	}
	return "VARCHAR"
}

// RecordType is the DuckDB type read_json reads a whole record with.
func RecordType() string { return "STRUCT(" + readFields(Columns) + ")" }

// SelectColumns is the select list that turns a record read at expr (of
// RecordType) into the events table's columns, under Athena's names.
func SelectColumns(expr string) string {
	parts := make([]string, len(Columns))
	for i, c := range Columns {
		parts[i] = c.Select(expr+"."+quote(c.Key)) + " AS " + quote(c.Name)
	}
	return strings.Join(parts, ", ")
}

func readFields(fs []Field) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = quote(f.Key) + " " + f.ReadType()
	}
	return strings.Join(parts, ", ")
}

// Select is the DuckDB expression that turns the field read at expr into
// Athena's shape: lower-case names inside structs, JSON kept as text.
func (f Field) Select(expr string) string {
	switch f.Kind {
	case JSONText:
		return expr + "::VARCHAR"
	case Struct:
		return "CASE WHEN " + expr + " IS NULL THEN NULL ELSE " + pack(f.Fields, expr) + " END"
	case StructArray:
		return "list_transform(" + expr + ", x -> " + pack(f.Fields, "x") + ")"
	}
	return expr
}

func pack(fs []Field, expr string) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = quote(f.Name) + " := " + f.Select(expr+"."+quote(f.Key))
	}
	return "struct_pack(" + strings.Join(parts, ", ") + ")"
}

func quote(name string) string { return `"` + name + `"` }
