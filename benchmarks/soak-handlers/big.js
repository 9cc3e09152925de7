// A large result: payload { bytes } → a string of that many bytes.
export default function big(payload) {
  return "x".repeat(payload.bytes);
}
