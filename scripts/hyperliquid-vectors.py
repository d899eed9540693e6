#!/usr/bin/env python3
"""Known-answer vectors for TradeBus's Hyperliquid signing, made with the official Python SDK.

    python3 -m venv /tmp/hl && /tmp/hl/bin/pip install hyperliquid-python-sdk==0.24.0
    /tmp/hl/bin/python scripts/hyperliquid-vectors.py > Tests/HyperliquidTests/Vectors/signing.json

The vectors are committed; the tests read them and need no Python. The keys below are made for these
vectors from a fixed phrase: they hold nothing and sign nothing real.

Each vector gives the inputs (the order, cancel or leverage change as TradeBus's adapter describes
it), and what the SDK makes of them: the MessagePack of the action, the action hash, the EIP-712
signature and the signer's address. Keccak-256 vectors come from eth_utils over lengths around the
136-byte block.
"""
import json
import sys

import msgpack
from eth_account import Account
from eth_utils import keccak, to_hex
from hyperliquid.utils.signing import (
    action_hash,
    order_request_to_order_wire,
    order_wires_to_order_action,
    sign_l1_action,
)
from hyperliquid.utils.types import Cloid


def key(phrase):
    return "0x" + keccak(text=phrase).hex()


KEYS = [key("tradebus hyperliquid vector agent 1"), key("tradebus hyperliquid vector agent 2")]


def order_vector(name, key_index, asset, is_buy, px, sz, reduce_only, order_type, cloid, grouping, nonce,
                 mainnet, vault=None, expires_after=None):
    request = {
        "coin": "unused",
        "is_buy": is_buy,
        "sz": sz,
        "limit_px": px,
        "order_type": order_type,
        "reduce_only": reduce_only,
    }
    if cloid:
        request["cloid"] = Cloid(cloid)
    wire = order_request_to_order_wire(request, asset)
    action = order_wires_to_order_action([wire], None, grouping)
    return finish(name, key_index, action, nonce, mainnet, vault, expires_after, {
        "kind": "order",
        "asset": asset,
        "isBuy": is_buy,
        "price": wire["p"],
        "size": wire["s"],
        "reduceOnly": reduce_only,
        "orderType": order_type if "limit" in order_type else {
            "trigger": {
                "isMarket": order_type["trigger"]["isMarket"],
                "triggerPx": wire["t"]["trigger"]["triggerPx"],
                "tpsl": order_type["trigger"]["tpsl"],
            }
        },
        "cloid": cloid,
        "grouping": grouping,
    })


def finish(name, key_index, action, nonce, mainnet, vault, expires_after, inputs):
    wallet = Account.from_key(KEYS[key_index])
    signature = sign_l1_action(wallet, action, vault, nonce, expires_after, mainnet)
    return {
        "name": name,
        "privateKey": KEYS[key_index],
        "address": wallet.address.lower(),
        "nonce": nonce,
        "mainnet": mainnet,
        "vaultAddress": vault,
        "expiresAfter": expires_after,
        "input": inputs,
        "action": action,
        "msgpack": msgpack.packb(action).hex(),
        "actionHash": "0x" + action_hash(action, vault, nonce, expires_after).hex(),
        "signature": signature,
    }


def main():
    vectors = [
        order_vector("IOC buy with a cloid, mainnet", 0, 0, True, 97543.0, 0.0123, False,
                     {"limit": {"tif": "Ioc"}}, "0x0123456789abcdef0123456789abcdef", "na", 1764892800123, True),
        order_vector("IOC sell, testnet, a price under 1", 1, 25, False, 0.51234, 1234.0, False,
                     {"limit": {"tif": "Ioc"}}, "0xfedcba9876543210fedcba9876543210", "na", 1764892800456, False),
        order_vector("reduce-only stop (trigger, market, sl)", 0, 1, False, 3100.5, 0.5, True,
                     {"trigger": {"triggerPx": 3105.5, "isMarket": True, "tpsl": "sl"}},
                     "0x00000000000000000000000000000001", "na", 1764892800789, True),
        order_vector("reduce-only target (trigger, market, tp), no cloid", 0, 3, True, 150.25, 12.5, True,
                     {"trigger": {"triggerPx": 149.0, "isMarket": True, "tpsl": "tp"}},
                     None, "na", 1764892801000, True),
        order_vector("GTC with a vault and expiresAfter", 1, 4, True, 12.345, 100.0, False,
                     {"limit": {"tif": "Gtc"}}, "0x11111111111111111111111111111111", "na", 1764892802000,
                     True, vault="0x1719884eb866cb12b2287399b15f7db5e7d775ea", expires_after=1764892862000),
        order_vector("large asset index and nonce", 0, 170, True, 0.000123, 1000000.0, False,
                     {"limit": {"tif": "Ioc"}}, "0xabababababababababababababababab", "na", 1999999999999, True),
    ]
    cancel = {"type": "cancelByCloid", "cancels": [{"asset": 1, "cloid": "0x00000000000000000000000000000001"}]}
    vectors.append(finish("cancel by cloid", 0, cancel, 1764892803000, True, None, None, {
        "kind": "cancelByCloid", "asset": 1, "cloid": "0x00000000000000000000000000000001"}))
    cancel_oid = {"type": "cancel", "cancels": [{"a": 0, "o": 91490942}]}
    vectors.append(finish("cancel by oid", 1, cancel_oid, 1764892804000, False, None, None, {
        "kind": "cancel", "asset": 0, "oid": 91490942}))
    leverage = {"type": "updateLeverage", "asset": 0, "isCross": False, "leverage": 7}
    vectors.append(finish("isolated leverage 7", 0, leverage, 1764892805000, True, None, None, {
        "kind": "updateLeverage", "asset": 0, "isCross": False, "leverage": 7}))

    lengths = [0, 1, 3, 55, 56, 135, 136, 137, 271, 272, 273, 1000]
    keccak_vectors = [
        {"hex": bytes((i * 7 + 3) % 256 for i in range(n)).hex(),
         "keccak256": "0x" + keccak(bytes((i * 7 + 3) % 256 for i in range(n))).hex()}
        for n in lengths
    ]
    keccak_vectors.append({"text": "abc", "keccak256": "0x" + keccak(text="abc").hex()})

    json.dump({
        "generator": "scripts/hyperliquid-vectors.py with hyperliquid-python-sdk",
        "keccak": keccak_vectors,
        "actions": vectors,
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
