// fmt's compiled part, built into strata rather than loaded as libfmt.so: a
// starting VM then loads one C++ library fewer (docs/ARCHITECTURE.md, "Start-up").
// format-inl.h defines fmt's out-of-line functions; the templates its headers
// declare `extern` (and the locale ones they leave to the library) are
// instantiated here for the character type strata formats.
#include <fmt/format-inl.h>

namespace fmt {
inline namespace v9 {
namespace detail {

template auto thousands_sep_impl<char>(locale_ref) -> thousands_sep_result<char>;
template auto decimal_point_impl(locale_ref) -> char;
template locale_ref::locale_ref(const std::locale& loc);
template auto locale_ref::get<std::locale>() const -> std::locale;

}  // namespace detail
}  // namespace v9
}  // namespace fmt
