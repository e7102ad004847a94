/* exec_stamp: prints "exec at CLOCK_MONOTONIC N ns" on stdout, then execs its
 * arguments. restore_bench.py starts each VMM through it (built static, so
 * nothing runs between the stamp and the exec but the exec itself): process
 * start is then the VMM's exec, without the ~2 ms of Python's own spawn. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: exec_stamp PROGRAM [ARGUMENT...]\n");
    return 2;
  }
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  char line[64];
  int length = snprintf(line, sizeof line, "exec at CLOCK_MONOTONIC %lld ns\n",
                        (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
  if (write(STDOUT_FILENO, line, (size_t)length) != length) return 2;
  execvp(argv[1], argv + 1);
  perror(argv[1]);
  return 127;
}
