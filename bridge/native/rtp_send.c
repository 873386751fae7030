/* One relay subscriber's share of a frame, in one call: its RTP packets built (a 12-byte header,
 * the sender's header extension block, the timeline's payloads), SRTP-protected in place by the
 * libsrtp that aiortc uses (its srtp_protect, passed in), and written to the subscriber's UDP
 * socket with one sendmmsg. What bridge.direct_send.DirectSender.send does in Python otherwise;
 * bridge/native_send.py builds this file and says when it is used.
 *
 * hn_fanout_frame does it for every subscriber of a timeline in steady state (bridge.native_fanout):
 * each one's stream state (sequence number, timestamp origin, extension block, counters, the last
 * frames it was sent, for NACKs) lives in its hn_sub while it is there. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

typedef int (*hn_protect_fn)(void *session, void *packet, int *length);

#define HN_MAX_PACKETS 256
#define HN_SRTP_TRAILER 16 /* the longest tag srtp_protect appends (AES-GCM; no MKI) */
#define HN_PICTURE_IDS 0x8000

/* The payload with its VP8 picture id advanced by delta, written in the 15-bit form (RFC 7741
 * 4.2), as bridge.keyframes.with_picture_id_delta; a payload without one is copied as it is. */
static int copy_payload(unsigned char *to, const unsigned char *from, int length, int delta)
{
    if (delta && length >= 3 && (from[0] & 0x80) && (from[1] & 0x80)) {
        int two = from[2] & 0x80;
        if (!two || length >= 4) {
            int id = two ? ((from[2] & 0x7F) << 8) | from[3] : from[2] & 0x7F;
            int skip = two ? 4 : 3;
            int next = (id + delta) % HN_PICTURE_IDS;
            if (next < 0)
                next += HN_PICTURE_IDS;
            to[0] = from[0];
            to[1] = from[1];
            to[2] = (unsigned char)(0x80 | (next >> 8));
            to[3] = (unsigned char)(next & 0xFF);
            memcpy(to + 4, from + skip, (size_t)(length - skip));
            return 4 + length - skip;
        }
    }
    memcpy(to, from, (size_t)length);
    return length;
}

/* Returns how many of the n datagrams the socket took (0..n) with *error = 0, or the errno of the
 * call that stopped short (EAGAIN: the socket's buffer is full); the caller hands the rest to the
 * asyncio transport, in order. Datagram i is out[offsets[i]:offsets[i + 1]]. Returns -1 when
 * nothing was sent: SRTP failed (*error = libsrtp's status) or out is too small (*error = -1). */
int hn_send_frame(int fd, const char *addr, int addrlen, uintptr_t session, uintptr_t protect,
                  const char *payloads, const int *lengths, int n,
                  int first_byte, int payload_type, int sequence_number, uint32_t timestamp, uint32_t ssrc,
                  const char *extension, int extension_length, int picture_id_delta,
                  char *out, int out_size, int *offsets, int *error)
{
    hn_protect_fn srtp_protect = (hn_protect_fn)protect;
    struct mmsghdr messages[HN_MAX_PACKETS];
    struct iovec vectors[HN_MAX_PACKETS];
    const unsigned char *payload = (const unsigned char *)payloads;
    int at = 0;

    if (n <= 0 || n > HN_MAX_PACKETS) {
        *error = -1;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        unsigned char *packet = (unsigned char *)out + at;
        int length;
        if (at + 12 + extension_length + lengths[i] + 1 + HN_SRTP_TRAILER > out_size) {
            *error = -1;
            return -1;
        }
        packet[0] = (unsigned char)first_byte;
        packet[1] = (unsigned char)(i == n - 1 ? payload_type | 0x80 : payload_type);
        packet[2] = (unsigned char)(sequence_number >> 8);
        packet[3] = (unsigned char)sequence_number;
        packet[4] = (unsigned char)(timestamp >> 24);
        packet[5] = (unsigned char)(timestamp >> 16);
        packet[6] = (unsigned char)(timestamp >> 8);
        packet[7] = (unsigned char)timestamp;
        packet[8] = (unsigned char)(ssrc >> 24);
        packet[9] = (unsigned char)(ssrc >> 16);
        packet[10] = (unsigned char)(ssrc >> 8);
        packet[11] = (unsigned char)ssrc;
        memcpy(packet + 12, extension, (size_t)extension_length);
        length = 12 + extension_length
                 + copy_payload(packet + 12 + extension_length, payload, lengths[i], picture_id_delta);
        int status = srtp_protect((void *)session, packet, &length);
        if (status) {
            *error = status;
            return -1;
        }
        offsets[i] = at;
        vectors[i].iov_base = packet;
        vectors[i].iov_len = (size_t)length;
        memset(&messages[i], 0, sizeof(messages[i]));
        messages[i].msg_hdr.msg_name = (void *)addr;
        messages[i].msg_hdr.msg_namelen = (socklen_t)addrlen;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        at += length;
        payload += lengths[i];
        sequence_number = (sequence_number + 1) & 0xFFFF;
    }
    offsets[n] = at;
    int sent = 0;
    while (sent < n) {
        int count = sendmmsg(fd, messages + sent, (unsigned int)(n - sent), MSG_DONTWAIT);
        if (count < 0) {
            if (errno == EINTR)
                continue;
            *error = errno;
            return sent;
        }
        sent += count;
    }
    *error = 0;
    return sent;
}

#define HN_RING 64
#define HN_EXTENSION_MAX 64
#define HN_NTP_UNIX_OFFSET 2208988800ULL

typedef struct {
    uint32_t frame;          /* the subscriber's frame count when it was sent (0: never) */
    uint32_t serial;         /* the timeline's frame number (bridge.rtp_frames.FramePacker.frames) */
    uint32_t sequence_number; /* of its first packet */
    uint32_t count;          /* packets */
    uint32_t timestamp;
    uint32_t abs_send_time;
} hn_sent;

typedef struct {
    int fd;
    char addr[28];
    int addrlen;
    uintptr_t session;
    int payload_type;
    uint32_t ssrc;
    int first_byte;
    uint32_t sequence_number; /* the next one */
    uint32_t timestamp_origin;
    char extension[HN_EXTENSION_MAX];
    int extension_length;
    int abs_at;              /* where the 3 bytes of abs-send-time are in extension; -1: not sent */
    int picture_id_delta;
    uint64_t packets;
    uint64_t octets;
    uint32_t frames;         /* frames sent from here */
    uint32_t last_timestamp;
    uint64_t last_ntp;
    hn_sent ring[HN_RING];   /* the last frames sent, at frames % HN_RING */
} hn_sub;

static uint64_t ntp_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return ((uint64_t)now.tv_sec + HN_NTP_UNIX_OFFSET) << 32 | (((uint64_t)now.tv_nsec << 32) / 1000000000ULL);
}

/* The frame to subs[start], subs[start + 1], … subs[count - 1]. Returns count when every one took
 * all of it; else the index of the first that did not, having sent *sent of its n packets (*error:
 * the errno; -1 with *error = libsrtp's status when SRTP failed and nothing was sent): its packets
 * are at out + offsets[i] for the caller to hand to the asyncio transport, and the caller goes on
 * from the next index. A subscriber's state is advanced for the frame before its packets leave, as
 * bridge.direct_send.DirectSender.send does. */
int hn_fanout_frame(hn_sub **subs, int start, int count, uintptr_t protect,
                    const char *payloads, const int *lengths, int n, int octets, uint32_t timestamp, uint32_t serial,
                    char *out, int out_size, int *offsets, int *sent, int *error)
{
    for (int i = start; i < count; i++) {
        hn_sub *sub = subs[i];
        uint64_t ntp = ntp_now();
        uint32_t abs_send_time = (uint32_t)((ntp >> 14) & 0x00FFFFFF);
        uint32_t ts = sub->timestamp_origin + timestamp;
        uint32_t seq = sub->sequence_number;
        if (sub->abs_at >= 0) {
            sub->extension[sub->abs_at] = (char)(abs_send_time >> 16);
            sub->extension[sub->abs_at + 1] = (char)(abs_send_time >> 8);
            sub->extension[sub->abs_at + 2] = (char)abs_send_time;
        }
        sub->frames += 1;
        hn_sent *record = &sub->ring[sub->frames % HN_RING];
        record->frame = sub->frames;
        record->serial = serial;
        record->sequence_number = seq;
        record->count = (uint32_t)n;
        record->timestamp = ts;
        record->abs_send_time = abs_send_time;
        sub->sequence_number = (seq + (uint32_t)n) & 0xFFFF;
        sub->packets += (uint64_t)n;
        sub->octets += (uint64_t)octets;
        sub->last_timestamp = ts;
        sub->last_ntp = ntp;
        int done = hn_send_frame(sub->fd, sub->addr, sub->addrlen, sub->session, protect, payloads, lengths, n,
                                 sub->first_byte, sub->payload_type, (int)seq, ts, sub->ssrc, sub->extension,
                                 sub->extension_length, sub->picture_id_delta, out, out_size, offsets, error);
        if (done != n) {
            *sent = done;
            return i;
        }
    }
    *sent = n;
    *error = 0;
    return count;
}
