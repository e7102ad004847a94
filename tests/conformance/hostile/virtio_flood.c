/* A hostile virtio driver, run by tests/integration/hostile_guest_test.cpp with
   `strata run --bare virtio_flood.elf --disk DISK` (slots: 0 virtio-blk,
   1 virtio-console, 2 virtio-rng). It drives the MMIO registers itself:
   1. virtio-blk: makes the same read request (head 0) available again and
      again while the device still holds it. The device must refuse (put
      itself in DEVICE_NEEDS_RESET) instead of starting requests without
      bound; the driver resets it and does it again, round after round.
   2. virtio-rng: makes one buffer available as fast as the device takes it,
      never reading the used ring.
   3. virtio-blk, reset once more: one honest read of sector 0 must still
      complete with the disk's first bytes ("HOSTILE-GUEST-DISK").
   Exit 0 when all three hold; the host's memory is checked from outside. */
#include "conformance.h"

#define VIRTIO_SLOT(n) (0x10001000ull + 0x1000ull * (n))
#define BLK_SLOT VIRTIO_SLOT(0)
#define RNG_SLOT VIRTIO_SLOT(2)

enum {
  REG_MAGIC = 0x000,
  REG_DEVICE_ID = 0x008,
  REG_DRIVER_FEATURES = 0x020,
  REG_DRIVER_FEATURES_SEL = 0x024,
  REG_QUEUE_SEL = 0x030,
  REG_QUEUE_NUM = 0x038,
  REG_QUEUE_READY = 0x044,
  REG_QUEUE_NOTIFY = 0x050,
  REG_STATUS = 0x070,
  REG_QUEUE_DESC_LOW = 0x080,
  REG_QUEUE_DESC_HIGH = 0x084,
  REG_QUEUE_DRIVER_LOW = 0x090,
  REG_QUEUE_DRIVER_HIGH = 0x094,
  REG_QUEUE_DEVICE_LOW = 0x0a0,
  REG_QUEUE_DEVICE_HIGH = 0x0a4,
};
enum { ACKNOWLEDGE = 1, DRIVER = 2, DRIVER_OK = 4, FEATURES_OK = 8, NEEDS_RESET = 0x40 };
enum { DESC_NEXT = 1, DESC_WRITE = 2 };
#define FEATURE_EVENT_IDX (1u << 29)  /* low word */
#define FEATURE_VERSION_1 1u          /* high word (bit 32) */
#define TICKS_PER_SECOND 10000000ull  /* the virt board's timebase */
#define QUEUE_SIZE 8

struct desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
struct queue {
  struct desc desc[QUEUE_SIZE];
  struct {
    uint16_t flags, idx, ring[QUEUE_SIZE], used_event;
  } avail;
  struct {
    uint16_t flags, idx;
    struct {
      uint32_t id, len;
    } ring[QUEUE_SIZE];
    uint16_t avail_event;
  } used __attribute__((aligned(4)));
  uint16_t next_avail;
} __attribute__((aligned(4096)));

static struct queue blk_queue, rng_queue;
static struct {
  uint32_t type, reserved;
  uint64_t sector;
} blk_header;
static uint8_t blk_data[512];
static volatile uint8_t blk_status;
static uint8_t rng_data[64];

static uint32_t reg(uint64_t base, unsigned offset) { return *(volatile uint32_t*)(base + offset); }
static void set_reg(uint64_t base, unsigned offset, uint32_t value) { *(volatile uint32_t*)(base + offset) = value; }
static uint64_t now(void) { return read_csr(time); }
static uint16_t load16(volatile uint16_t* p) { return *p; }

/* Resets the device and brings it up with one queue of QUEUE_SIZE at q. */
static int start_device(uint64_t base, uint32_t device_id, struct queue* q) {
  if (reg(base, REG_MAGIC) != 0x74726976 || reg(base, REG_DEVICE_ID) != device_id) return 0;
  set_reg(base, REG_STATUS, 0);
  set_reg(base, REG_STATUS, ACKNOWLEDGE);
  set_reg(base, REG_STATUS, ACKNOWLEDGE | DRIVER);
  set_reg(base, REG_DRIVER_FEATURES_SEL, 0);
  set_reg(base, REG_DRIVER_FEATURES, FEATURE_EVENT_IDX);
  set_reg(base, REG_DRIVER_FEATURES_SEL, 1);
  set_reg(base, REG_DRIVER_FEATURES, FEATURE_VERSION_1);
  set_reg(base, REG_STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
  if (!(reg(base, REG_STATUS) & FEATURES_OK)) return 0;
  volatile uint8_t* bytes = (volatile uint8_t*)q;
  for (unsigned i = 0; i < sizeof *q; ++i) bytes[i] = 0;
  uint64_t desc = (uint64_t)q->desc, avail = (uint64_t)&q->avail, used = (uint64_t)&q->used;
  set_reg(base, REG_QUEUE_SEL, 0);
  set_reg(base, REG_QUEUE_NUM, QUEUE_SIZE);
  set_reg(base, REG_QUEUE_DESC_LOW, (uint32_t)desc);
  set_reg(base, REG_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
  set_reg(base, REG_QUEUE_DRIVER_LOW, (uint32_t)avail);
  set_reg(base, REG_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
  set_reg(base, REG_QUEUE_DEVICE_LOW, (uint32_t)used);
  set_reg(base, REG_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
  set_reg(base, REG_QUEUE_READY, 1);
  set_reg(base, REG_STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  return 1;
}

static void set_desc(struct queue* q, unsigned index, void* addr, uint32_t len, uint16_t flags) {
  q->desc[index].addr = (uint64_t)addr;
  q->desc[index].len = len;
  q->desc[index].flags = flags;
  q->desc[index].next = (uint16_t)(index + 1);
}

/* Whether the device has taken what was made available (it publishes
   avail_event when it finds the ring empty): staying within QUEUE_SIZE of it
   keeps the avail index from running ahead, which the device would refuse
   for a different reason. */
static int device_keeps_up(struct queue* q) {
  return (uint16_t)(q->next_avail - load16(&q->used.avail_event)) < QUEUE_SIZE;
}

static void make_available(uint64_t base, struct queue* q, uint16_t head) {
  q->avail.ring[q->next_avail % QUEUE_SIZE] = head;
  __sync_synchronize();
  ++q->next_avail;
  *(volatile uint16_t*)&q->avail.idx = q->next_avail;
  __sync_synchronize();
  set_reg(base, REG_QUEUE_NOTIFY, 0);
}

static void build_blk_read(void) {
  blk_header.type = 0; /* VIRTIO_BLK_T_IN */
  blk_header.sector = 0;
  blk_status = 0xff;
  set_desc(&blk_queue, 0, &blk_header, sizeof blk_header, DESC_NEXT);
  set_desc(&blk_queue, 1, blk_data, sizeof blk_data, DESC_NEXT | DESC_WRITE);
  set_desc(&blk_queue, 2, (void*)&blk_status, 1, DESC_WRITE);
}

int main(void) {
  /* 1. The same head, again and again, while the device holds it. */
  uint64_t refused_rounds = 0, rounds = 0, posted = 0;
  uint64_t end = now() + 3 * TICKS_PER_SECOND;
  while (now() < end) {
    CHECK(1, start_device(BLK_SLOT, 2, &blk_queue), 1);
    build_blk_read();
    ++rounds;
    uint64_t round_end = now() + TICKS_PER_SECOND;
    while (now() < round_end) {
      if (reg(BLK_SLOT, REG_STATUS) & NEEDS_RESET) {
        ++refused_rounds;
        break;
      }
      if (device_keeps_up(&blk_queue)) {
        make_available(BLK_SLOT, &blk_queue, 0);
        ++posted;
      }
    }
    if (refused_rounds != rounds) break;  /* a whole second without refusal */
  }
  print_str("blk: ");
  print_dec(refused_rounds);
  print_str(" of ");
  print_dec(rounds);
  print_str(" rounds refused, ");
  print_dec(posted);
  print_str(" heads posted\n");
  CHECK(2, refused_rounds == rounds && rounds > 0, 1);

  /* 2. One rng buffer, made available as fast as the device takes it. */
  CHECK(3, start_device(RNG_SLOT, 4, &rng_queue), 1);
  set_desc(&rng_queue, 0, rng_data, sizeof rng_data, DESC_WRITE);
  uint64_t rng_posted = 0;
  end = now() + 2 * TICKS_PER_SECOND;
  while (now() < end) {
    if (!device_keeps_up(&rng_queue)) continue;
    make_available(RNG_SLOT, &rng_queue, 0);
    ++rng_posted;
  }
  print_str("rng: ");
  print_dec(rng_posted);
  print_str(" buffers posted\n");
  CHECK(4, reg(RNG_SLOT, REG_STATUS) & NEEDS_RESET, 0);
  CHECK(5, rng_posted > 1000, 1);

  /* 3. An honest read still works. */
  CHECK(6, start_device(BLK_SLOT, 2, &blk_queue), 1);
  build_blk_read();
  make_available(BLK_SLOT, &blk_queue, 0);
  end = now() + 5 * TICKS_PER_SECOND;
  while (load16(&blk_queue.used.idx) != 1 && now() < end) {
  }
  CHECK(7, load16(&blk_queue.used.idx), 1);
  CHECK(8, blk_status, 0);
  static const char expected[] = "HOSTILE-GUEST-DISK";
  for (unsigned i = 0; i + 1 < sizeof expected; ++i) CHECK(9, blk_data[i], (uint8_t)expected[i]);
  print_str("honest read after the flood: ok\n");
  return 0;
}
