#include "vmm/live_disk.h"
#include "vmm/migration_incoming.h"

#include <time.h>

#include <cstdio>
#include <future>
#include <thread>

#include <fmt/core.h>

#include "vmm/migration_disks.h"
#include "vmm/migration_stream.h"
#include "vmm/migration_tls.h"

namespace strata::vmm {
namespace {

constexpr int kIoSeconds = 30;            // a source silent this long has failed
constexpr int kNextChannelTimeoutMs = 10'000;

// Every channel of one migration, channel 0 first.
// With credentials, each channel speaks TLS (migration_tls.h).
Result<std::vector<migration::ChannelReader>> acceptChannels(
    int listenFd, const VmConfig& config, std::shared_ptr<const storage::nbd::TlsCredentials> credentials) {
  const uint64_t memoryBytes = config.memoryBytes;
  std::vector<std::optional<migration::ChannelReader>> channels;
  std::optional<migration::Hello> first;
  size_t accepted = 0;
  do {
    auto socket = migration::acceptTcp(listenFd, first ? kNextChannelTimeoutMs : -1, kIoSeconds);
    if (!socket) return socket.error();
    if (credentials) socket = migration::acceptTlsChannel(std::move(*socket), credentials, config, kIoSeconds);
    if (!socket) return socket.error();
    migration::ChannelReader reader(std::move(*socket));
    auto hello = reader.readHello();
    if (!hello) return hello.error();
    if (hello->memoryBytes != memoryBytes)
      return Error{fmt::format("the source VM has {} MiB of memory, this one {} MiB", hello->memoryBytes >> 20,
                               memoryBytes >> 20)};
    if (!first) {
      first = *hello;
      channels.resize(hello->channels);
    }
    if (hello->session != first->session || hello->channels != first->channels || channels[hello->channel])
      return Error{fmt::format("channel {} does not belong to this migration", hello->channel)};
    channels[hello->channel].emplace(std::move(reader));
  } while (++accepted < channels.size());
  std::vector<migration::ChannelReader> ordered;
  for (auto& channel : channels) ordered.push_back(std::move(*channel));
  return ordered;
}

}  // namespace

Result<IncomingVm> receiveMigration(const VmConfig& config, VmControl& control, HostConsole& console,
                                                       EventLoop& loop,
                                                       const std::vector<std::unique_ptr<storage::BlockDevice>>& disks,
                                                       const std::vector<NetInterface>& nics,
                                                       const AnnouncedDiskOpener& openAnnounced) {
  auto address = migration::parseTcpAddress(config.incoming);
  if (!address) return Error{"--incoming " + address.error().message};
  auto listening = migration::listenTcp(*address);
  if (!listening) return Error{"--incoming: " + listening.error().message};
  auto refused = [&](const std::string& why) { return Error{fmt::format("incoming migration refused: {}", why)}; };
  std::shared_ptr<const storage::nbd::TlsCredentials> credentials;
  if (!config.incomingTlsCerts.empty()) {
    auto loaded = storage::nbd::TlsCredentials::loadX509Directory(config.incomingTlsCerts);
    if (!loaded) return Error{"--tls-certs: " + loaded.error().message};
    credentials = std::move(*loaded);
  }
  // `strata run --stats`: when each step of the switch-over ended, on the clock the source reports its own in.
  auto mark = [&](const char* step) {
    if (!config.printEngineStats) return;
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    std::fprintf(stderr, "migration: %s at CLOCK_MONOTONIC %lld ns\n", step,
                 static_cast<long long>(now.tv_sec) * 1'000'000'000 + now.tv_nsec);
  };
  auto channels = acceptChannels(listening->get(), config, credentials);
  if (!channels) return refused(channels.error().message);
  listening->reset();
  int answerFd = (*channels)[0].fd();
  auto refuse = [&](const std::string& why) {
    (void)migration::sendAnswer(answerFd, "ERR " + why);
    return refused(why);
  };
  std::vector<uint8_t> manifest;  // read ahead of the board, which needs the disks
  if (openAnnounced) {
    auto record = (*channels)[0].readDiskRecord();
    if (!record) return refuse(record.error().message);
    auto announced = migration::parseDiskManifest(*record);
    if (!announced) return refuse(announced.error().message);
    if (auto opened = openAnnounced(*announced); !opened) return refuse(opened.error().message);
    manifest = std::move(*record);
  }

  auto machine = GuestMachine::createForIncoming(config, control, console, loop, disks, nics);
  if (!machine) return machine.error();
  machine::GuestRam& ram = (*machine)->guestRam();
  // Disk records come on channel 0 only, in the order they were sent.
  migration::DiskMirrorTarget mirror(disks, loop);
  if (!manifest.empty())
    if (auto applied = mirror.apply(manifest); !applied) return refuse(applied.error().message);
  (*channels)[0].setDiskSink([&mirror](std::span<const uint8_t> record) { return mirror.apply(record); });
  // Channels other than 0 on threads of their own; the pages they write never overlap.
  std::vector<std::future<Result<void>>> others;
  for (size_t index = 1; index < channels->size(); ++index)
    others.push_back(std::async(std::launch::async, [&, index] {
      return (*channels)[index].receive(ram, nullptr);
    }));
  std::vector<uint8_t> stateBytes;
  Result<void> received = (*channels)[0].receive(ram, &stateBytes);
  for (auto& other : others)
    if (auto done = other.get(); !done && received) received = done;
  if (!received) return refuse(received.error().message);
  mark("stream received");
  if (mirror.mirrored()) {
    if (auto flushed = mirror.finish(); !flushed) return refuse(flushed.error().message);
  } else {  // shared storage: what the source wrote since these disks were opened, flushed before its state came
    for (LiveDisk* disk : control.disks())
      if (auto reopened = disk->reopenImage(); !reopened) return refuse(reopened.error().message);
  }
  if (stateBytes.empty()) return refuse("the stream carried no device state");
  auto state = StateReader::parse(std::move(stateBytes));
  if (!state) return refuse("device state: " + state.error().message);
  mark("state checked");
  if (auto loaded = (*machine)->loadState(*state, mirror.mirrored()); !loaded) return refuse(loaded.error().message);
  mark("devices loaded");
  IncomingVm incoming{std::move(*machine), nullptr};
  if ((*channels)[0].postcopy()) {  // the disks are whole by now: post-copy fetches only RAM
    auto prepared = migration::PostcopyDestination::prepare(ram, (*channels)[0].postcopyPages());
    if (!prepared) return refuse(prepared.error().message);
    incoming.postcopy = std::move(*prepared);
  }
  if (auto answered = migration::sendAnswer(answerFd, "OK"); !answered)
    return refused("the source went away before the confirmation: " + answered.error().message);
  mark("confirmed");
  (*channels)[0].setDiskSink(nullptr);  // the mirror ends with this function; the fetcher reads only pages
  if (incoming.postcopy) incoming.postcopy->start(std::move((*channels)[0]), config, control);
  return incoming;
}

}  // namespace strata::vmm
