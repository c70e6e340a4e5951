package sandbox

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"strings"
	"time"
)

// notificationConfig is a bucket's event notification configuration. Topic
// destinations are validated and used; queue and Lambda ones are kept as
// given (the sandbox has neither service).
type notificationConfig struct {
	Topics    []notificationTarget `xml:"TopicConfiguration"`
	Queues    []notificationTarget `xml:"QueueConfiguration"`
	Functions []notificationTarget `xml:"CloudFunctionConfiguration"`
}

type notificationTarget struct {
	ID            string   `xml:"Id"`
	Topic         string   `xml:"Topic"`
	Queue         string   `xml:"Queue"`
	CloudFunction string   `xml:"CloudFunction"`
	Events        []string `xml:"Event"`
	Rules         []struct {
		Name, Value string
	} `xml:"Filter>S3Key>FilterRule"`
}

// filter returns the key prefix and suffix the configuration is limited to.
func (t notificationTarget) filter() (prefix, suffix string) {
	for _, r := range t.Rules {
		if strings.EqualFold(r.Name, "prefix") {
			prefix = r.Value
		} else {
			suffix = r.Value
		}
	}
	return prefix, suffix
}

func (t notificationTarget) matches(event, key string) bool {
	prefix, suffix := t.filter()
	if !strings.HasPrefix(key, prefix) || !strings.HasSuffix(key, suffix) {
		return false
	}
	for _, e := range t.Events {
		if e == event || strings.HasSuffix(e, ":*") && strings.HasPrefix(event, strings.TrimSuffix(e, "*")) {
			return true
		}
	}
	return false
}

// notificationEvents are the event types S3 publishes (User Guide, "Supported
// event types for SQS, SNS, and Lambda").
var notificationEvents = map[string]bool{}

func init() {
	for _, e := range strings.Fields(`s3:TestEvent s3:ObjectCreated:* s3:ObjectCreated:Put s3:ObjectCreated:Post
		s3:ObjectCreated:Copy s3:ObjectCreated:CompleteMultipartUpload s3:ObjectRemoved:* s3:ObjectRemoved:Delete
		s3:ObjectRemoved:DeleteMarkerCreated s3:ObjectRestore:* s3:ObjectRestore:Post s3:ObjectRestore:Completed
		s3:ObjectRestore:Delete s3:ReducedRedundancyLostObject s3:Replication:* s3:Replication:OperationFailedReplication
		s3:Replication:OperationMissedThreshold s3:Replication:OperationReplicatedAfterThreshold
		s3:Replication:OperationNotTracked s3:LifecycleExpiration:* s3:LifecycleExpiration:Delete
		s3:LifecycleExpiration:DeleteMarkerCreated s3:LifecycleTransition s3:IntelligentTiering s3:ObjectTagging:*
		s3:ObjectTagging:Put s3:ObjectTagging:Delete s3:ObjectAcl:Put`) {
		notificationEvents[e] = true
	}
	delete(notificationEvents, "s3:TestEvent") // S3 sends it; nobody subscribes to it
}

// eventsOverlap reports whether two event types name a common event.
func eventsOverlap(a, b string) bool {
	family := func(e string) string { return e[:strings.LastIndex(e, ":")+1] }
	return a == b || strings.HasSuffix(a, ":*") && family(a) == family(b) || strings.HasSuffix(b, ":*") && family(a) == family(b)
}

// overlap reports whether two configurations could both match one event, which
// S3 refuses.
func overlap(a, b notificationTarget) bool {
	common := false
	for _, x := range a.Events {
		for _, y := range b.Events {
			common = common || eventsOverlap(x, y)
		}
	}
	if !common {
		return false
	}
	ap, as := a.filter()
	bp, bs := b.filter()
	prefixes := strings.HasPrefix(ap, bp) || strings.HasPrefix(bp, ap)
	suffixes := strings.HasSuffix(as, bs) || strings.HasSuffix(bs, as)
	return prefixes && suffixes
}

// putNotification validates a configuration as S3 does before storing it: known
// events, no overlapping configurations, each topic in the bucket's region and
// letting the bucket publish, proved by a test event to each (unless the caller
// sends x-amz-skip-destination-validation). Callers hold s.mu.
func (s *Sandbox) putNotification(c *call, b *bucket) error {
	body, _ := io.ReadAll(io.LimitReader(c.r.Body, 1<<20))
	var cfg notificationConfig
	if xml.Unmarshal(body, &cfg) != nil {
		return errorf(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
	}
	all := append(append(append([]notificationTarget{}, cfg.Topics...), cfg.Queues...), cfg.Functions...)
	for i, t := range all {
		if len(t.Events) == 0 {
			return errorf(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
		}
		for _, e := range t.Events {
			if !notificationEvents[e] {
				return errorf(400, "InvalidArgument", "The event is not supported for notifications: %s", e)
			}
		}
		for _, r := range t.Rules {
			if !strings.EqualFold(r.Name, "prefix") && !strings.EqualFold(r.Name, "suffix") {
				return errorf(400, "InvalidArgument", "filter rule name must be either prefix or suffix: %s", r.Name)
			}
		}
		for _, other := range all[:i] {
			if overlap(t, other) {
				return errorf(400, "InvalidArgument", "Configurations overlap. Configurations on the same bucket cannot share a common event type.")
			}
		}
	}
	skip := strings.EqualFold(c.r.Header.Get("x-amz-skip-destination-validation"), "true")
	var tested []*topic
	for _, cfgTopic := range cfg.Topics {
		m := topicARNRE().FindStringSubmatch(cfgTopic.Topic)
		if m == nil {
			return errorf(400, "InvalidArgument", "Unable to validate the following destination configurations: %s", cfgTopic.Topic)
		}
		if m[1] != b.Region {
			return errorf(400, "InvalidArgument", "The notification destination service region is not valid for the bucket location constraint: %s", cfgTopic.Topic)
		}
		if skip {
			continue
		}
		t := s.st.Topics[cfgTopic.Topic]
		if t == nil || s.authorizeS3Publish(b, t) != nil {
			return errorf(400, "InvalidArgument", "Unable to validate the following destination configurations: %s", cfgTopic.Topic)
		}
		tested = append(tested, t)
	}
	b.Notification = strings.TrimPrefix(strings.TrimSpace(string(body)), strings.TrimSpace(xml.Header))
	b.notification = &cfg
	for _, t := range uniqueTopics(tested) {
		msg, _ := json.Marshal(map[string]string{"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": snsTime(time.Now()),
			"Bucket": b.Name, "RequestId": c.requestID, "HostId": randomHex(32)})
		s.publishToTopic(t, "Amazon S3 Notification", string(msg))
	}
	return nil
}

func uniqueTopics(ts []*topic) []*topic {
	var out []*topic
	seen := map[*topic]bool{}
	for _, t := range ts {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// authorizeS3Publish asks the topic's policy whether S3 may publish events of
// bucket b, with the keys S3 sets. Callers hold s.mu.
func (s *Sandbox) authorizeS3Publish(b *bucket, t *topic) error {
	ctx := map[string][]string{"aws:SourceArn": {"arn:aws:s3:::" + b.Name}, "aws:SourceAccount": {b.Owner},
		"aws:SecureTransport": {"true"}, "aws:CurrentTime": {time.Now().UTC().Format(time.RFC3339)}}
	return s.authorizeTopic(caller{Service: "s3.amazonaws.com"}, t, "sns:Publish", ctx)
}

// notifyReplicationFailure publishes s3:Replication:OperationFailedReplication
// to the bucket's matching topics, in the shape of the User Guide's example.
// S3 sends it only for rules with replication metrics enabled. Callers hold s.mu.
func (s *Sandbox) notifyReplicationFailure(src *bucket, rule *replicationRule, v *version, reason string) {
	if src.notification == nil || rule.Destination.Metrics == nil || rule.Destination.Metrics.Status != "Enabled" {
		return
	}
	const event = "s3:Replication:OperationFailedReplication"
	now := time.Now()
	for _, cfg := range src.notification.Topics {
		t := s.st.Topics[cfg.Topic]
		if !cfg.matches(event, v.Key) || t == nil {
			continue
		}
		if err := s.authorizeS3Publish(src, t); err != nil {
			s.opts.Logger.Info("s3: event not published", "bucket", src.Name, "topic", cfg.Topic, "error", err)
			continue
		}
		record := map[string]any{
			"eventVersion": "2.2", "eventSource": "aws:s3", "awsRegion": src.Region, "eventTime": snsTime(now),
			"eventName":         strings.TrimPrefix(event, "s3:"),
			"userIdentity":      map[string]string{"principalId": "s3.amazonaws.com"},
			"requestParameters": map[string]string{"sourceIPAddress": "s3.amazonaws.com"},
			"responseElements":  map[string]string{"x-amz-request-id": randomID("", 16), "x-amz-id-2": randomHex(32)},
			"s3": map[string]any{"s3SchemaVersion": "1.0", "configurationId": cfg.ID,
				"bucket": map[string]any{"name": src.Name, "ownerIdentity": map[string]string{"principalId": canonicalID(src.Owner)}, "arn": "arn:aws:s3:::" + src.Name},
				"object": map[string]any{"key": v.Key, "size": v.Size, "eTag": strings.Trim(v.ETag, `"`), "versionId": v.ID, "sequencer": randomHex(9)}},
			"replicationEventData": map[string]string{"replicationRuleId": rule.ID, "destinationBucket": rule.Destination.Bucket,
				"s3Operation": "OBJECT_PUT", "requestTime": snsTime(v.LastModified), "failureReason": reason},
		}
		msg, _ := json.Marshal(map[string]any{"Records": []any{record}})
		s.publishToTopic(t, "Amazon S3 Notification", string(msg))
	}
}
