package sandbox

import (
	"net"
	"strings"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// isPublic is S3's "meaning of public" for a bucket policy (User Guide, Block
// Public Access): S3 assumes a policy public, and an Allow statement is
// non-public only when it grants to fixed principals or narrows everyone by a
// fixed value (no wildcard, no policy variable) of one of the keys below.
// aws:SourceIp counts only for ranges no wider than /8 (IPv4) or /32 (IPv6).
// The guide names aws:PrincipalOrgID as a principal; the other principal keys
// (aws:PrincipalAccount, aws:PrincipalArn) identify principals more narrowly
// and are read the same way.
func isPublic(doc *policy.Document) bool {
	for _, st := range doc.Statements {
		if st.Effect == policy.Allow && publicStatement(st) {
			return true
		}
	}
	return false
}

var fixingKeys = map[string]bool{
	"aws:sourcearn": true, "aws:sourcevpc": true, "aws:sourcevpce": true, "aws:sourceowner": true, "aws:sourceaccount": true,
	"s3:x-amz-server-side-encryption-aws-kms-key-id": true, "aws:userid": true, "s3:dataaccesspointarn": true,
	"s3:dataaccesspointaccount": true, "aws:principalorgid": true, "aws:principalaccount": true, "aws:principalarn": true,
}

func publicStatement(st policy.Statement) bool {
	p := st.Principal
	if st.NotPrincipal != nil {
		return true // everyone but someone
	}
	if p == nil {
		return false
	}
	everyone := p.All || len(p.Federated) > 0
	for _, a := range p.AWS {
		everyone = everyone || !fixed(a)
	}
	if !everyone {
		return false
	}
	for op, keys := range st.Condition {
		if !narrowingOperator(op) {
			continue
		}
		for key, values := range keys {
			k := strings.ToLower(key)
			switch {
			case k == "aws:sourceip" && strings.HasPrefix(op, "IpAddress") && narrowRanges(values):
				return false
			case fixingKeys[k] && allFixed(values):
				return false
			}
		}
	}
	return true
}

// narrowingOperator is an operator under which the key must be present and
// equal to one of the values; negations and ...IfExists narrow nothing.
func narrowingOperator(op string) bool {
	if strings.Contains(op, ":") || strings.HasSuffix(op, "IfExists") || strings.Contains(op, "Not") {
		return false
	}
	return strings.HasPrefix(op, "String") || strings.HasPrefix(op, "Arn") || op == "IpAddress"
}

func fixed(v string) bool {
	return v != "" && !strings.ContainsAny(v, "*?") && !strings.Contains(v, "${")
}

func allFixed(values policy.Strings) bool {
	for _, v := range values {
		if !fixed(v) {
			return false
		}
	}
	return len(values) > 0
}

func narrowRanges(values policy.Strings) bool {
	for _, v := range values {
		if !strings.Contains(v, "/") {
			if strings.Contains(v, ":") {
				v += "/128"
			} else {
				v += "/32"
			}
		}
		_, n, err := net.ParseCIDR(v)
		if err != nil {
			return false
		}
		ones, bits := n.Mask.Size()
		if bits == 32 && ones < 8 && !n.IP.IsPrivate() || bits == 128 && ones < 32 {
			return false
		}
	}
	return len(values) > 0
}
