package awsapi

import (
	"context"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The cache must answer exactly what the SDK's rules answer, bucket by bucket.
func TestS3EndpointCacheAgreesWithTheSDK(t *testing.T) {
	ctx := context.Background()
	cached, plain := newS3Endpoints(), s3.NewDefaultEndpointResolverV2()
	cases := []s3.EndpointParameters{
		{Bucket: aws.String("archive"), Region: aws.String("ap-northeast-1"), Key: aws.String("AWSLogs/1/a")},
		{Bucket: aws.String("other"), Region: aws.String("ap-northeast-1"), Key: aws.String("AWSLogs/1/b")},
		{Bucket: aws.String("archive"), Region: aws.String("us-east-1"), UseFIPS: aws.Bool(true)},
		{Bucket: aws.String("archive"), Region: aws.String("us-east-1"), Endpoint: aws.String("http://127.0.0.1:4566"), ForcePathStyle: aws.Bool(true)},
		{Bucket: aws.String("archive"), Region: aws.String("us-east-1"), Endpoint: aws.String("http://127.0.0.1:4567"), ForcePathStyle: aws.Bool(true)},
	}
	for range 2 { // the second round is answered from the cache
		for _, p := range cases {
			want, err1 := plain.ResolveEndpoint(ctx, p)
			got, err2 := cached.ResolveEndpoint(ctx, p)
			if err1 != nil || err2 != nil || got.URI.String() != want.URI.String() || !reflect.DeepEqual(got.Headers, want.Headers) {
				t.Fatalf("%+v: cached %v %v, SDK %v %v", p, got.URI.String(), err2, want.URI.String(), err1)
			}
		}
	}
}

// A new endpoint parameter in an SDK upgrade must be added to endpointKey.
func TestS3EndpointKeyCoversEveryParameter(t *testing.T) {
	if n := reflect.TypeOf(s3.EndpointParameters{}).NumField(); n != 17 {
		t.Fatalf("s3.EndpointParameters has %d fields, endpointKey knows 17: add the new ones (or leave them out, as Key, if the rules do not read them)", n)
	}
}
