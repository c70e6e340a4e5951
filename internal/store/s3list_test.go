package store

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// listDouble answers ListObjectVersions with pages it was given, by the
// key-marker asked for, and keeps every request.
type listDouble struct {
	mu       sync.Mutex
	pages    map[string]string // key-marker -> body
	requests []*http.Request
}

func (d *listDouble) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.requests = append(d.requests, r.Clone(context.Background()))
	body, ok := d.pages[r.URL.Query().Get("key-marker")]
	d.mu.Unlock()
	if !ok {
		w.WriteHeader(403)
		fmt.Fprint(w, `<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
		return
	}
	fmt.Fprint(w, body)
}

// sdkOnly hides the SDK's client type, so that a store uses the SDK's calls.
type sdkOnly struct{ S3API }

func listClients(t testing.TB, d http.Handler) (lean, sdk S3) {
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	c := s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, HTTPClient: srv.Client(), RetryMaxAttempts: 1,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", testSecret, "session-token"))})
	return S3{Client: c, Bucket: "archive"}, S3{Client: sdkOnly{c}, Bucket: "archive"}
}

const (
	owner     = `<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>mtd@amazon.com</DisplayName></Owner>`
	firstPage = `<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>archive</Name><Prefix>AWSLogs/</Prefix><KeyMarker/><VersionIdMarker/><MaxKeys>4</MaxKeys><Delimiter>/</Delimiter>
  <IsTruncated>true</IsTruncated><NextKeyMarker>AWSLogs/b &amp; c.json.gz</NextKeyMarker><NextVersionIdMarker>v/3+x=</NextVersionIdMarker>
  <DeleteMarker><Key>AWSLogs/a.json.gz</Key><VersionId>dm1</VersionId><IsLatest>true</IsLatest><LastModified>2026-12-07T01:05:03.000Z</LastModified>` + owner + `</DeleteMarker>
  <Version><Key>AWSLogs/a.json.gz</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest><LastModified>2026-12-07T01:05:00.000Z</LastModified>
    <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size><StorageClass>STANDARD</StorageClass>` + owner + `
    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm><ChecksumAlgorithm>SHA256</ChecksumAlgorithm><RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress></RestoreStatus></Version>
  <Version><Key>AWSLogs/b &amp; c.json.gz</Key><VersionId>v/3+x=</VersionId><IsLatest>true</IsLatest><LastModified>2026-12-07T02:00:00Z</LastModified><ETag>"e2"</ETag><Size>7</Size></Version>
  <CommonPrefixes><Prefix>AWSLogs/111111111111/</Prefix></CommonPrefixes>
  <CommonPrefixes><Prefix>AWSLogs/&#233;&#x4E2D;/</Prefix></CommonPrefixes>
</ListVersionsResult>
`
	secondPage = `<?xml version="1.0" encoding="UTF-8"?><ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated>` +
		`<Version><Key>AWSLogs/d&lt;&gt;&apos;
z</Key><VersionId>null</VersionId><IsLatest>true</IsLatest><LastModified>2026-12-07T03:00:00.5Z</LastModified><ETag>"e3-2"</ETag><Size>0</Size></Version>` +
		`<DeleteMarker><Key>AWSLogs/e</Key><VersionId>dm2</VersionId><IsLatest>true</IsLatest><LastModified>2026-12-07T03:00:00Z</LastModified></DeleteMarker>` +
		`<Version><Key>AWSLogs/e</Key><VersionId>v9</VersionId><IsLatest>false</IsLatest><LastModified>2026-12-07T03:00:00Z</LastModified><ETag>"e4"</ETag><Size>9</Size></Version>` +
		`</ListVersionsResult>`
)

// TestLeanListingMatchesSDK: the lean ListObjectVersions gives what the
// SDK's gives over the same pages (entities, character references, line
// ends, delete markers, versions written in the same second, common
// prefixes, a second page from the markers), with requests that carry a
// valid SigV4 signature over the same query as the SDK's.
func TestLeanListingMatchesSDK(t *testing.T) {
	d := &listDouble{pages: map[string]string{"": firstPage, "AWSLogs/b & c.json.gz": secondPage}}
	lean, sdk := listClients(t, d)
	ctx := context.Background()
	collect := func(b S3) (all []Version, folders []string) {
		folders, objects, err := b.Level(ctx, "AWSLogs/")
		if err != nil {
			t.Fatal(err)
		}
		return objects, folders
	}
	want, wantFolders := collect(sdk)
	sdkRequests := len(d.requests)
	got, gotFolders := collect(lean)
	if len(want) != 6 || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotFolders, wantFolders) {
		t.Fatalf("lean listing:\n%+v\n%q\nthe SDK's:\n%+v\n%q", got, gotFolders, want, wantFolders)
	}
	if got[2].Key != "AWSLogs/b & c.json.gz" || got[3].Key != "AWSLogs/d<>'\nz" || gotFolders[1] != "AWSLogs/é中/" {
		t.Errorf("text not resolved as XML says: %q %q %q", got[2].Key, got[3].Key, gotFolders[1])
	}
	if len(d.requests) != 2*sdkRequests {
		t.Fatalf("%d lean requests, %d by the SDK", len(d.requests)-sdkRequests, sdkRequests)
	}
	for i, r := range d.requests[sdkRequests:] {
		if why := checkSigV4(r); why != "" {
			t.Fatalf("lean request %s: %s", r.RequestURI, why)
		}
		s := d.requests[i]
		if why := checkSigV4(s); why != "" {
			t.Fatalf("the SDK's request fails the check, so the check is wrong: %s", why)
		}
		lq, sq := r.URL.Query(), s.URL.Query()
		sq.Del("x-id") // the SDK names its operation
		if !reflect.DeepEqual(lq, sq) || r.URL.Path != s.URL.Path {
			t.Errorf("lean request %s, the SDK's %s", r.RequestURI, s.RequestURI)
		}
	}

	// VersionsAfter starts at the key-marker and follows the pages.
	var keys []string
	if err := lean.VersionsAfter(ctx, "AWSLogs/", "AWSLogs/b & c.json.gz", func(v Version) error { keys = append(keys, v.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[0] != "AWSLogs/d<>'\nz" {
		t.Errorf("after the marker: %q", keys)
	}
}

// TestURLEncodedListing: both listings ask S3 to URL-encode keys, and read
// back the keys, folders and next marker of a page that says it did, as
// botocore does ('+' a space); a key that is not URL-encoded is an error.
func TestURLEncodedListing(t *testing.T) {
	encoded := `<ListVersionsResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated><NextKeyMarker>AWSLogs/a%01+b%2B.json.gz</NextKeyMarker>
  <Version><Key>AWSLogs/a%01+b%2B.json.gz</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest><ETag>"e1"</ETag><Size>1</Size></Version>
  <CommonPrefixes><Prefix>AWSLogs/%E4%B8%AD%20x/</Prefix></CommonPrefixes></ListVersionsResult>`
	// In S3's order, the keys': "c d" before "c!", whose encodings sort the other way.
	last := `<ListVersionsResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
  <DeleteMarker><Key>AWSLogs/c+d</Key><VersionId>dm</VersionId><IsLatest>true</IsLatest></DeleteMarker>
  <Version><Key>AWSLogs/c%21</Key><VersionId>v2</VersionId><IsLatest>true</IsLatest><ETag>"e2"</ETag><Size>1</Size></Version></ListVersionsResult>`
	ctx := context.Background()
	for _, which := range []string{"lean", "SDK"} {
		d := &listDouble{pages: map[string]string{"": encoded, "AWSLogs/a\x01 b+.json.gz": last}}
		lean, sdk := listClients(t, d)
		b := map[string]S3{"lean": lean, "SDK": sdk}[which]
		folders, objects, err := b.Level(ctx, "AWSLogs/")
		if err != nil {
			t.Fatalf("%s: %v", which, err)
		}
		if len(objects) != 3 || objects[0].Key != "AWSLogs/a\x01 b+.json.gz" || objects[1].Key != "AWSLogs/c d" || objects[2].Key != "AWSLogs/c!" ||
			len(folders) != 1 || folders[0] != "AWSLogs/中 x/" {
			t.Errorf("%s: %q %+v", which, folders, objects)
		}
		for _, r := range d.requests {
			if r.URL.Query().Get("encoding-type") != "url" {
				t.Errorf("%s: %s does not ask for URL-encoded keys", which, r.RequestURI)
			}
		}
		d.pages[""] = strings.Replace(encoded, "%01", "%zz", 1)
		if _, _, err := b.Level(ctx, "AWSLogs/"); err == nil || !strings.Contains(err.Error(), "s3://archive/AWSLogs/") || !strings.Contains(err.Error(), "%zz") {
			t.Errorf("%s: a key that is not URL-encoded: %v", which, err)
		}
	}
}

// TestHostileListings: a listing that is not S3's well-formed XML, or whose
// pages do not advance, is an error naming the bucket and prefix, never a
// shorter list or a loop.
func TestHostileListings(t *testing.T) {
	ctx := context.Background()
	v := `<Version><Key>k</Key><VersionId>1</VersionId></Version>`
	for name, body := range map[string]string{
		"not XML":              "gateway timeout",
		"another root":         `<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>`,
		"unterminated":         `<ListVersionsResult>` + v,
		"mismatched end":       `<ListVersionsResult><Version><Key>k</VersionId></Version></ListVersionsResult>`,
		"unknown entity":       `<ListVersionsResult><Version><Key>&bogus;</Key></Version></ListVersionsResult>`,
		"bad size":             `<ListVersionsResult><Version><Key>k</Key><Size>12x</Size></Version></ListVersionsResult>`,
		"bad time":             `<ListVersionsResult><Version><Key>k</Key><LastModified>yesterday</LastModified></Version></ListVersionsResult>`,
		"comment":              `<ListVersionsResult><!-- -->` + v + `</ListVersionsResult>`,
		"CDATA":                `<ListVersionsResult><Version><Key><![CDATA[k]]></Key></Version></ListVersionsResult>`,
		"control character":    "<ListVersionsResult><Version><Key>k\x01</Key></Version></ListVersionsResult>",
		"invalid UTF-8":        "<ListVersionsResult><Version><Key>k\xff</Key></Version></ListVersionsResult>",
		"not UTF-8":            `<?xml version="1.0" encoding="ISO-8859-1"?><ListVersionsResult>` + v + `</ListVersionsResult>`,
		"text after the root":  `<ListVersionsResult>` + v + `</ListVersionsResult><Version/>`,
		"truncated, no marker": `<ListVersionsResult><IsTruncated>true</IsTruncated>` + v + `</ListVersionsResult>`,
		"truncated, same page": `<ListVersionsResult><IsTruncated>true</IsTruncated><NextKeyMarker></NextKeyMarker>` + v + `</ListVersionsResult>`,
		"deep":                 `<ListVersionsResult>` + strings.Repeat("<a>", 10000) + strings.Repeat("</a>", 10000) + `</ListVersionsResult>`,
	} {
		lean, _ := listClients(t, &listDouble{pages: map[string]string{"": body}})
		_, _, err := lean.Level(ctx, "AWSLogs/")
		if err == nil || !strings.Contains(err.Error(), "s3://archive/AWSLogs/") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// S3's own error keeps its code.
	lean, _ := listClients(t, &listDouble{})
	if _, _, err := lean.Level(ctx, "AWSLogs/"); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("denied: %v", err)
	}
}

// FuzzParseVersionsPage: whatever the lean parser accepts, the SDK's own
// decoder accepts too and reads the same versions, prefixes and markers.
func FuzzParseVersionsPage(f *testing.F) {
	f.Add(firstPage)
	f.Add(secondPage)
	f.Add(`<ListVersionsResult><Version/><DeleteMarker></DeleteMarker><CommonPrefixes/></ListVersionsResult>`)
	f.Add(`<ListVersionsResult><EncodingType>url</EncodingType><NextKeyMarker>a%20b</NextKeyMarker><Version><Key>a+%01</Key></Version><CommonPrefixes><Prefix>%E4%B8%AD/</Prefix></CommonPrefixes></ListVersionsResult>`)
	f.Add(`<?xml version='1.0'?><ListVersionsResult a='1' xmlns:x="y"><version><KEY>&#x41;&#10;</KEY><isLatest>1</isLatest></version></ListVersionsResult>`)
	var mu sync.Mutex
	var body string
	_, sdk := listClients(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprint(w, body)
	}))
	f.Fuzz(func(t *testing.T, data string) {
		p, err := parseVersionsPage([]byte(data))
		if err == nil {
			err = p.urlDecode()
		}
		if err != nil {
			return
		}
		mu.Lock()
		body = data
		mu.Unlock()
		q, err := sdk.page(context.Background(), "", "", "", "")
		if err != nil {
			t.Fatalf("the lean parser accepts what the SDK refuses (%v):\n%q", err, data)
		}
		// Versions that tie on key, latest and time are in S3's order in
		// the lean list, versions before delete markers in the SDK's.
		if !reflect.DeepEqual(inAnyOrder(p.versions), inAnyOrder(q.versions)) ||
			!reflect.DeepEqual(p.prefixes, q.prefixes) || p.truncated != q.truncated || p.nextKey != q.nextKey || p.nextVersionID != q.nextVersionID || p.encoding != q.encoding {
			t.Fatalf("lean %+v\nSDK  %+v\nfrom %q", p, q, data)
		}
	})
}

func inAnyOrder(vs []Version) []string {
	var out []string
	for _, v := range vs {
		out = append(out, fmt.Sprintf("%+v", v))
	}
	sort.Strings(out)
	return out
}

// BenchmarkListVersionsPage: one page of 1,000 versions as S3 writes it,
// through the lean listing and the SDK's, each over the same local server.
func BenchmarkListVersionsPage(b *testing.B) {
	var page strings.Builder
	page.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>archive</Name><Prefix>AWSLogs/</Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>`)
	for i := range 1000 {
		fmt.Fprintf(&page, `<Version><Key>AWSLogs/111111111111/CloudTrail/us-east-1/2026/12/07/111111111111_CloudTrail_us-east-1_20261207T%04dZ_abcdefghijklmnop.json.gz</Key><VersionId>3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X%04d</VersionId><IsLatest>true</IsLatest><LastModified>2026-12-07T01:05:00.000Z</LastModified><ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>%s<StorageClass>STANDARD</StorageClass></Version>`, i, i, owner)
	}
	page.WriteString(`</ListVersionsResult>`)
	lean, sdk := listClients(b, &listDouble{pages: map[string]string{"": page.String()}})
	for _, s := range []struct {
		name string
		b    S3
	}{{"lean", lean}, {"sdk", sdk}} {
		b.Run(s.name, func(b *testing.B) {
			for b.Loop() {
				if _, objects, err := s.b.Level(context.Background(), "AWSLogs/"); err != nil || len(objects) != 1000 {
					b.Fatal(err, len(objects))
				}
			}
		})
	}
}
