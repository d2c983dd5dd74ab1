// The open-addressing index: lookups, erase with backward shift, growth, and a long random
// run of inserts and erases checked against std::unordered_map.
#include <catch2/catch.hpp>

#include <deque>
#include <random>
#include <string>
#include <unordered_map>

#include "herdcache/hash_index.hpp"
#include "herdcache/keys.hpp"

using namespace herdcache;

namespace {

struct Item {
  std::string name;
  std::uint64_t hash_value;
  std::string_view key() const noexcept { return name; }
  std::uint64_t hash() const noexcept { return hash_value; }
};

Item make_item(std::string name) {
  const std::uint64_t hash = hash_bytes(name);
  return Item{std::move(name), hash};
}

// Items whose hashes all land on home slot 0 while the table has `capacity` slots.
std::deque<Item> colliding(std::size_t count, std::size_t capacity) {
  std::deque<Item> items;
  for (std::uint64_t i = 0; items.size() < count; ++i) {
    Item item = make_item("c" + std::to_string(i));
    if ((item.hash() & (capacity - 1)) == 0) items.push_back(std::move(item));
  }
  return items;
}

void add(HashIndex<Item>& index, Item& item) {
  index.reserve_one();
  index.insert(&item);
}

}  // namespace

TEST_CASE("hash index: finds what it holds by key and hash, nothing else") {
  HashIndex<Item> index;
  CHECK(index.find("a", hash_bytes("a")) == nullptr);
  CHECK(index.capacity() == 0);
  Item a = make_item("a"), b = make_item("b");
  add(index, a);
  add(index, b);
  CHECK(index.find("a", a.hash()) == &a);
  CHECK(index.find("b", b.hash()) == &b);
  CHECK(index.find("a", b.hash()) == nullptr);  // looked for under another key's hash
  CHECK(index.find("c", hash_bytes("c")) == nullptr);
  index.erase(&a);
  CHECK(index.find("a", a.hash()) == nullptr);
  CHECK(index.find("b", b.hash()) == &b);
  CHECK(index.size() == 1);
}

TEST_CASE("hash index: erasing from the middle of a run keeps the rest reachable") {
  HashIndex<Item> index;
  index.reserve_one();  // capacity 16
  std::deque<Item> items = colliding(6, index.capacity());
  for (Item& item : items) add(index, item);
  REQUIRE(index.capacity() == 16);
  CHECK(index.max_displacement() == 5);
  index.erase(&items[1]);
  index.erase(&items[3]);
  CHECK(index.max_displacement() == 3);  // the run shifted back over both holes
  for (std::size_t i = 0; i < items.size(); ++i) {
    CHECK(index.find(items[i].name, items[i].hash()) == (i == 1 || i == 3 ? nullptr : &items[i]));
  }
}

TEST_CASE("hash index: grows before it is 7/8 full and keeps every item") {
  HashIndex<Item> index;
  std::deque<Item> items;
  for (int i = 0; i < 1000; ++i) {
    items.push_back(make_item("k" + std::to_string(i)));
    add(index, items.back());
    CHECK(index.size() * 8 <= index.capacity() * 7);
  }
  CHECK(index.capacity() == 2048);
  for (const Item& item : items) CHECK(index.find(item.name, item.hash()) == &item);
  index.clear();
  CHECK(index.capacity() == 0);
  CHECK(index.find(items[0].name, items[0].hash()) == nullptr);
}

TEST_CASE("hash index: a long run of random inserts and erases agrees with unordered_map") {
  HashIndex<Item> index;
  std::unordered_map<std::string, Item> model;  // node-based: the items' addresses are stable
  std::mt19937 rng(16);
  std::uniform_int_distribution<int> pick(0, 4999);
  for (int step = 0; step < 200000; ++step) {
    const std::string name = "k" + std::to_string(pick(rng));
    auto it = model.find(name);
    if (it == model.end()) {
      Item& item = model.emplace(name, make_item(name)).first->second;
      add(index, item);
    } else {
      index.erase(&it->second);
      model.erase(it);
    }
    if (step % 20000 == 0) {
      for (const auto& [key, item] : model) REQUIRE(index.find(key, item.hash()) == &item);
    }
  }
  CHECK(index.size() == model.size());
  for (int i = 0; i < 5000; ++i) {
    const std::string name = "k" + std::to_string(i);
    auto it = model.find(name);
    CHECK(index.find(name, hash_bytes(name)) == (it == model.end() ? nullptr : &it->second));
  }
}
