package sandbox

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// snsMessage is one HTTP(S) delivery: the JSON document SNS posts, with the
// headers it sends.
type snsMessage struct {
	endpoint string
	kind     string // SubscriptionConfirmation or Notification
	subARN   string
	body     map[string]string
	retries  []time.Duration // the wait before each retry, from the delivery policy
}

// snsSigner signs messages as SNS does (SignatureVersion 2, SHA256withRSA) with
// a key whose certificate the sandbox serves at SigningCertURL.
type snsSigner struct {
	once    sync.Once
	key     *rsa.PrivateKey
	certPEM []byte
}

const snsCertPath = "/_sandbox/sns/SimpleNotificationService.pem"

func (g *snsSigner) init() {
	g.once.Do(func() {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err) // crypto/rand does not fail on the platforms Go supports
		}
		now := time.Now()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.amazonaws.com (trailkeeper sandbox)"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		g.key, g.certPEM = key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	})
}

// sign adds Signature, SignatureVersion and SigningCertURL to a message. The
// string to sign is the documented one: name and value lines of the fields of
// the message's type, in byte order of the names.
func (g *snsSigner) sign(body map[string]string, base string) {
	g.init()
	fields := []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	if body["Type"] != "Notification" {
		fields = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
	}
	var buf bytes.Buffer
	for _, f := range fields {
		if v, ok := body[f]; ok {
			buf.WriteString(f + "\n" + v + "\n")
		}
	}
	sum := sha256.Sum256(buf.Bytes())
	sig, _ := rsa.SignPKCS1v15(rand.Reader, g.key, crypto.SHA256, sum[:])
	body["SignatureVersion"] = "2"
	body["Signature"] = base64.StdEncoding.EncodeToString(sig)
	body["SigningCertURL"] = base + snsCertPath
}

// sendConfirmation asks an endpoint to confirm its subscription. Email cannot
// leave the sandbox: such subscriptions stay pending. Callers hold s.mu.
func (s *Sandbox) sendConfirmation(t *topic, sub *subscription) {
	if !deliverable(sub) {
		s.opts.Logger.Info("sns: the sandbox sends nothing off this machine (no email, no other hosts); the subscription stays pending", "topic", t.ARN, "endpoint", sub.Endpoint)
		return
	}
	q := url.Values{"Action": {"ConfirmSubscription"}, "TopicArn": {t.ARN}, "Token": {sub.Token}}
	body := map[string]string{"Type": "SubscriptionConfirmation", "MessageId": uuid(), "Token": sub.Token, "TopicArn": t.ARN,
		"Message":      "You have chosen to subscribe to the topic " + t.ARN + ".\nTo confirm the subscription, visit the SubscribeURL included in this message.",
		"SubscribeURL": sub.Base + "/?" + q.Encode(), "Timestamp": snsTime(time.Now())}
	s.enqueueSNS(snsMessage{endpoint: sub.Endpoint, kind: "SubscriptionConfirmation", body: body, retries: retryDelays(t, nil)}, sub.Base)
}

// publishToTopic sends a message to every confirmed http(s) subscription of a topic and
// returns its id. Callers hold s.mu.
func (s *Sandbox) publishToTopic(t *topic, subject, message string) string {
	id := uuid()
	for _, sub := range t.Subscriptions {
		if !sub.Confirmed || !deliverable(sub) {
			continue
		}
		body := map[string]string{"Type": "Notification", "MessageId": id, "TopicArn": t.ARN, "Message": message,
			"Timestamp": snsTime(time.Now()), "UnsubscribeURL": sub.Base + "/?" + url.Values{"Action": {"Unsubscribe"}, "SubscriptionArn": {sub.ARN}}.Encode()}
		if subject != "" {
			body["Subject"] = subject
		}
		s.enqueueSNS(snsMessage{endpoint: sub.Endpoint, kind: "Notification", subARN: sub.ARN, body: body, retries: retryDelays(t, sub)}, sub.Base)
	}
	return id
}

// deliverable says whether the sandbox posts to a subscription: http(s) on
// loopback only, so that nothing leaves the machine.
func deliverable(sub *subscription) bool {
	if sub.Protocol != "http" && sub.Protocol != "https" {
		return false
	}
	u, err := url.Parse(sub.Endpoint)
	if err != nil {
		return false
	}
	host := u.Hostname()
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || isLoopback(host)
}

func snsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// enqueueSNS signs a message and hands it to the sender. Callers hold s.mu.
func (s *Sandbox) enqueueSNS(m snsMessage, base string) {
	s.snsSign.sign(m.body, base)
	select {
	case s.snsQueue <- m:
	default:
		s.opts.Logger.Warn("sns: delivery queue full, message dropped", "endpoint", m.endpoint)
	}
}

// snsSender posts messages outside the lock, each on its own schedule: a
// failed delivery is tried again after the waits of its delivery policy
// (three more times, 20 seconds apart, by default), while other messages go
// on; a 2xx answer is delivered.
func (s *Sandbox) snsSender() {
	defer s.done.Done()
	client := &http.Client{Timeout: 15 * time.Second}
	inFlight := make(chan struct{}, 256) // messages being delivered or waiting to retry
	for {
		select {
		case <-s.stop:
			return
		case m := <-s.snsQueue:
			select {
			case inFlight <- struct{}{}:
			case <-s.stop:
				return
			}
			s.done.Add(1)
			go func() {
				defer s.done.Done()
				defer func() { <-inFlight }()
				s.deliverSNS(client, m)
			}()
		}
	}
}

// deliverSNS posts one message until it is delivered or its policy runs out.
func (s *Sandbox) deliverSNS(client *http.Client, m snsMessage) {
	body, _ := json.Marshal(m.body)
	for try := 0; ; try++ {
		req, err := http.NewRequest(http.MethodPost, m.endpoint, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "text/plain; charset=UTF-8")
		req.Header.Set("User-Agent", "Amazon Simple Notification Service Agent")
		req.Header.Set("x-amz-sns-message-type", m.kind)
		req.Header.Set("x-amz-sns-message-id", m.body["MessageId"])
		req.Header.Set("x-amz-sns-topic-arn", m.body["TopicArn"])
		if m.subARN != "" {
			req.Header.Set("x-amz-sns-subscription-arn", m.subARN)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if try >= len(m.retries) {
			s.opts.Logger.Info("sns: delivery policy exhausted, message discarded", "endpoint", m.endpoint, "attempts", try+1, "error", err)
			return
		}
		s.opts.Logger.Info("sns: delivery failed, retrying", "endpoint", m.endpoint, "try", try+1, "in", m.retries[try], "error", err)
		select {
		case <-s.stop:
			return
		case <-time.After(m.retries[try]):
		}
	}
}
