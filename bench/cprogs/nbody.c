/* The n-body floating-point kernel (the Sun, the four giant planets): double
 * precision, a square root per pair and step. Argument: steps. Built with
 * -ffp-contract=off so every target rounds alike and prints the same energy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { kBodies = 5 };
static const double kPi = 3.141592653589793;
static const double kDaysPerYear = 365.24;

struct body {
  double x, y, z, vx, vy, vz, mass;
};

static void advance(struct body* bodies, double dt) {
  for (int i = 0; i < kBodies; ++i) {
    struct body* a = &bodies[i];
    for (int j = i + 1; j < kBodies; ++j) {
      struct body* b = &bodies[j];
      double dx = a->x - b->x, dy = a->y - b->y, dz = a->z - b->z;
      double distance2 = dx * dx + dy * dy + dz * dz;
      double magnitude = dt / (distance2 * sqrt(distance2));
      a->vx -= dx * b->mass * magnitude;
      a->vy -= dy * b->mass * magnitude;
      a->vz -= dz * b->mass * magnitude;
      b->vx += dx * a->mass * magnitude;
      b->vy += dy * a->mass * magnitude;
      b->vz += dz * a->mass * magnitude;
    }
  }
  for (int i = 0; i < kBodies; ++i) {
    bodies[i].x += dt * bodies[i].vx;
    bodies[i].y += dt * bodies[i].vy;
    bodies[i].z += dt * bodies[i].vz;
  }
}

static double energy(const struct body* bodies) {
  double e = 0;
  for (int i = 0; i < kBodies; ++i) {
    const struct body* a = &bodies[i];
    e += 0.5 * a->mass * (a->vx * a->vx + a->vy * a->vy + a->vz * a->vz);
    for (int j = i + 1; j < kBodies; ++j) {
      const struct body* b = &bodies[j];
      double dx = a->x - b->x, dy = a->y - b->y, dz = a->z - b->z;
      e -= a->mass * b->mass / sqrt(dx * dx + dy * dy + dz * dz);
    }
  }
  return e;
}

int main(int argc, char** argv) {
  long steps = argc > 1 ? atol(argv[1]) : 1000000;
  const double solarMass = 4 * kPi * kPi;
  struct body bodies[kBodies] = {
      {0, 0, 0, 0, 0, 0, solarMass},
      {4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01, 1.66007664274403694e-03 * kDaysPerYear,
       7.69901118419740425e-03 * kDaysPerYear, -6.90460016972063023e-05 * kDaysPerYear, 9.54791938424326609e-04 * solarMass},
      {8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01, -2.76742510726862411e-03 * kDaysPerYear,
       4.99852801234917238e-03 * kDaysPerYear, 2.30417297573763929e-05 * kDaysPerYear, 2.85885980666130812e-04 * solarMass},
      {1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01, 2.96460137564761618e-03 * kDaysPerYear,
       2.37847173959480950e-03 * kDaysPerYear, -2.96589568540237556e-05 * kDaysPerYear, 4.36624404335156298e-05 * solarMass},
      {1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01, 2.68067772490389322e-03 * kDaysPerYear,
       1.62824170038242295e-03 * kDaysPerYear, -9.51592254519715870e-05 * kDaysPerYear, 5.15138902046611451e-05 * solarMass},
  };
  /* The system's total momentum is cancelled through the Sun's velocity. */
  double px = 0, py = 0, pz = 0;
  for (int i = 0; i < kBodies; ++i) {
    px += bodies[i].vx * bodies[i].mass;
    py += bodies[i].vy * bodies[i].mass;
    pz += bodies[i].vz * bodies[i].mass;
  }
  bodies[0].vx = -px / solarMass;
  bodies[0].vy = -py / solarMass;
  bodies[0].vz = -pz / solarMass;
  double before = energy(bodies);
  for (long i = 0; i < steps; ++i) advance(bodies, 0.01);
  printf("nbody steps=%ld energy %.9f -> %.9f\n", steps, before, energy(bodies));
  return 0;
}
