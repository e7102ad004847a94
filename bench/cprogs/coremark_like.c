/* CoreMark-style integer work: linked-list sorting and searching, small
 * integer matrix arithmetic and a character state machine, repeated and folded
 * into a CRC so the compiler can elide none of it. Argument: iterations. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kListNodes = 256, kMatrixSize = 24, kInputBytes = 2048 };

struct node {
  struct node* next;
  int32_t key;
  int32_t value;
};

static uint16_t crc16_step(uint16_t crc, uint8_t byte) {
  crc ^= byte;
  for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
  return crc;
}

static uint16_t crc16_word(uint16_t crc, uint32_t word) {
  for (int i = 0; i < 4; ++i) crc = crc16_step(crc, (uint8_t)(word >> (8 * i)));
  return crc;
}

/* Merge sort of a singly linked list, by key (ascending) or by value. */
static struct node* merge_sort(struct node* list, int by_value) {
  if (!list || !list->next) return list;
  struct node *slow = list, *fast = list->next;
  while (fast && fast->next) {
    slow = slow->next;
    fast = fast->next->next;
  }
  struct node* second = slow->next;
  slow->next = NULL;
  struct node* a = merge_sort(list, by_value);
  struct node* b = merge_sort(second, by_value);
  struct node head = {0}, *tail = &head;
  while (a && b) {
    int take_a = by_value ? a->value <= b->value : a->key <= b->key;
    if (take_a) {
      tail->next = a;
      a = a->next;
    } else {
      tail->next = b;
      b = b->next;
    }
    tail = tail->next;
  }
  tail->next = a ? a : b;
  return head.next;
}

static uint16_t list_work(struct node* nodes, uint32_t seed, uint16_t crc) {
  for (int i = 0; i < kListNodes; ++i) {
    seed = seed * 1103515245u + 12345u;
    nodes[i].key = (int32_t)(seed >> 8) & 0xffff;
    nodes[i].value = (int32_t)(seed >> 4) & 0x7fff;
    nodes[i].next = i + 1 < kListNodes ? &nodes[i + 1] : NULL;
  }
  struct node* list = merge_sort(nodes, 1);
  list = merge_sort(list, 0);
  for (int probe = 0; probe < 32; ++probe) {  /* searches, found or not */
    int32_t wanted = (int32_t)((seed >> probe) & 0xffff);
    int32_t position = 0;
    struct node* at = list;
    while (at && at->key < wanted) {
      at = at->next;
      ++position;
    }
    crc = crc16_word(crc, (uint32_t)position);
  }
  for (struct node* at = list; at; at = at->next) crc = crc16_word(crc, (uint32_t)at->value);
  return crc;
}

static uint16_t matrix_work(int32_t a[kMatrixSize][kMatrixSize], int32_t b[kMatrixSize][kMatrixSize],
                            int32_t c[kMatrixSize][kMatrixSize], uint32_t seed, uint16_t crc) {
  for (int i = 0; i < kMatrixSize; ++i)
    for (int j = 0; j < kMatrixSize; ++j) {
      seed = seed * 1664525u + 1013904223u;
      a[i][j] = (int32_t)(seed >> 20) - 2048;
      b[i][j] = (int32_t)((seed >> 8) & 0xfff) - 2048;
    }
  for (int i = 0; i < kMatrixSize; ++i)
    for (int j = 0; j < kMatrixSize; ++j) {
      int32_t sum = 0;
      for (int k = 0; k < kMatrixSize; ++k) sum += a[i][k] * b[k][j];
      c[i][j] = sum;
    }
  for (int i = 0; i < kMatrixSize; ++i)
    for (int j = 0; j < kMatrixSize; ++j) {
      c[i][j] += a[i][j] * 3 - (b[i][j] >> 2);
      crc = crc16_word(crc, (uint32_t)(c[i][j] > 0 ? c[i][j] : -c[i][j]) ^ (uint32_t)(c[i][j] & 0xff));
    }
  return crc;
}

/* Classifies an input of numbers ("123", "-4.5", "6e7") and junk into counts per final state. */
enum state { kStart, kSign, kInteger, kDot, kFraction, kExponent, kExponentSign, kExponentDigits, kInvalid, kStates };

static enum state next_state(enum state at, char c) {
  int digit = c >= '0' && c <= '9';
  switch (at) {
    case kStart: return digit ? kInteger : (c == '+' || c == '-') ? kSign : c == '.' ? kDot : kInvalid;
    case kSign: return digit ? kInteger : c == '.' ? kDot : kInvalid;
    case kInteger: return digit ? kInteger : c == '.' ? kFraction : (c == 'e' || c == 'E') ? kExponent : kInvalid;
    case kDot: return digit ? kFraction : kInvalid;
    case kFraction: return digit ? kFraction : (c == 'e' || c == 'E') ? kExponent : kInvalid;
    case kExponent: return digit ? kExponentDigits : (c == '+' || c == '-') ? kExponentSign : kInvalid;
    case kExponentSign:
    case kExponentDigits: return digit ? kExponentDigits : kInvalid;
    default: return kInvalid;
  }
}

static uint16_t state_work(char* input, uint32_t seed, uint16_t crc) {
  static const char alphabet[] = "0123456789+-.eE,x";
  for (int i = 0; i < kInputBytes; ++i) {
    seed = seed * 22695477u + 1u;
    input[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
  }
  uint32_t counts[kStates] = {0};
  enum state at = kStart;
  for (int i = 0; i < kInputBytes; ++i) {
    if (input[i] == ',') {
      ++counts[at];
      at = kStart;
    } else {
      at = next_state(at, input[i]);
    }
  }
  for (int s = 0; s < kStates; ++s) crc = crc16_word(crc, counts[s]);
  return crc;
}

int main(int argc, char** argv) {
  long iterations = argc > 1 ? atol(argv[1]) : 2000;
  static struct node nodes[kListNodes];
  static int32_t a[kMatrixSize][kMatrixSize], b[kMatrixSize][kMatrixSize], c[kMatrixSize][kMatrixSize];
  static char input[kInputBytes];
  uint16_t crc = 0;
  for (long i = 0; i < iterations; ++i) {
    uint32_t seed = (uint32_t)i * 2654435761u;
    crc = list_work(nodes, seed, crc);
    crc = matrix_work(a, b, c, seed, crc);
    crc = state_work(input, seed, crc);
  }
  printf("coremark-like iterations=%ld crc=0x%04x\n", iterations, crc);
  return 0;
}
