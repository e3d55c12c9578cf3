"""Limits and field types of mParticle's inbound batches, as sets the cleaners read by name.

The published schema (`schema/`, see `inbound`) is the final word on what is valid;
these sets let `clean` coerce values to the right type by field name first (a
string `"1595542763908"` where an integer belongs), which the schema cannot do. A
test checks the sets against the schema, so they cannot drift from it.
"""

from __future__ import annotations

import re

API_LIMIT_NAME = 256
API_LIMIT_VALUE = 4096
API_LIMIT_ATTRIBUTES_PER_EVENT = 100
API_LIMIT_USER_ATTRIBUTES = 100
API_LIMIT_USER_ATTRIBUTE_LIST = 1000
API_LIMIT_USER_ATTRIBUTE_LIST_ITEM = 512

MAX_BATCHES_PER_REQUEST = 100
# The documented ceiling is "under 256kb"; staying a little below 256,000 bytes
# leaves room for whichever definition of a kilobyte the API gateway uses.
MAX_REQUEST_BYTES = 255_000
# One batch "should not exceed 128kb" (documented for SDK data); honouring it for
# server-side data costs nothing and keeps every batch well inside a request.
MAX_BATCH_BYTES = 128_000
MAX_EVENTS_PER_BATCH = 100

# device_info fields the schema constrains to the UUID pattern.
UUID_DEVICE_FIELDS = frozenset(
    {
        "ios_advertising_id",
        "ios_idfv",
        "android_advertising_id",
        "roku_advertising_id",
        "roku_publisher_id",
        "fire_advertising_id",
    }
)

#: `\Z`, not `$`: a `$` also matches before a final newline, which the schema refuses.
UUID_PATTERN = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)

DEVICE_INFO_FIELDS = frozenset(
    {
        "brand",
        "product",
        "device",
        "android_uuid",
        "device_manufacturer",
        "platform",
        "os_version",
        "device_model",
        "screen_height",
        "screen_width",
        "screen_dpi",
        "device_country",
        "locale_language",
        "locale_country",
        "network_country",
        "network_carrier",
        "network_code",
        "network_mobile_country_code",
        "timezone_offset",
        "build_identifier",
        "http_header_user_agent",
        "ios_advertising_id",
        "att_authorization_status",
        "att_timestamp_unixtime_ms",
        "push_token",
        "cpu_architecture",
        "is_tablet",
        "push_notification_sound_enabled",
        "push_notification_vibrate_enabled",
        "radio_access_technology",
        "supports_telephony",
        "has_nfc",
        "bluetooth_enabled",
        "bluetooth_version",
        "ios_idfv",
        "android_advertising_id",
        "build_version_release",
        "limit_ad_tracking",
        "amp_id",
        "is_dst",
        "roku_advertising_id",
        "roku_publisher_id",
        "microsoft_advertising_id",
        "microsoft_publisher_id",
        "fire_advertising_id",
    }
)

DEVICE_INFO_ENUMS: dict[str, frozenset[str]] = {
    "platform": frozenset(
        {
            "iOS",
            "Android",
            "web",
            "tvOS",
            "roku",
            "out_of_band",
            "alexa",
            "smart_tv",
            "fire_tv",
            "xbox",
        }
    ),
    "att_authorization_status": frozenset({"authorized", "denied", "not_determined", "restricted"}),
}

APPLICATION_INFO_FIELDS = frozenset(
    {
        "application_name",
        "application_version",
        "application_build_number",
        "install_referrer",
        "package",
        "os",
        "apple_search_ads_attributes",
    }
)

APPLICATION_OS_VALUES = frozenset(
    {
        "IOS",
        "Android",
        "WindowsPhone",
        "MobileWeb",
        "UnityIOS",
        "UnityAndroid",
        "Desktop",
        "TVOS",
        "Roku",
        "OutOfBand",
        "Alexa",
        "SmartTV",
        "FireTV",
        "Xbox",
    }
)

CUSTOM_EVENT_TYPES = frozenset(
    {
        "navigation",
        "location",
        "search",
        "transaction",
        "user_content",
        "user_preference",
        "social",
        "other",
        "media",
    }
)

PRODUCT_ACTIONS = frozenset(
    {
        "add_to_cart",
        "remove_from_cart",
        "checkout",
        "checkout_option",
        "click",
        "view_detail",
        "purchase",
        "refund",
        "add_to_wishlist",
        "remove_from_wish_list",
    }
)

COMMERCE_EVENT_TYPES = CUSTOM_EVENT_TYPES | frozenset(
    {
        "add_to_cart",
        "remove_from_cart",
        "checkout",
        "checkout_option",
        "click",
        "view_detail",
        "purchase",
        "refund",
        "promotion_view",
        "promotion_click",
        "add_to_wishlist",
        "remove_from_wishlist",
        "impression",
        "attribution",
        "consent_granted",
        "consent_denied",
    }
)

# Event data mParticle stamps for its own processing (de-duplication among it): a
# replay into another workspace must not claim the original's. `event_id` and
# `session_id` stay: the inbound schema takes them, and SDKs tie sessions by them.
OUTBOUND_ONLY_DATA_FIELDS = frozenset({"message_id", "message_type"})

# Keys typed integer anywhere inside event data (products, locations, ...).
INTEGER_FIELDS = frozenset(
    {
        "timestamp_unixtime_ms",
        "event_id",
        "session_id",
        "session_start_unixtime_ms",
        "event_start_unixtime_ms",
        "event_num",
        "session_duration_ms",
        "checkout_step",
        "added_to_cart_time_ms",
        "time_elapsed",
        "bytes_in",
        "bytes_out",
        "response_code",
        "previous_mpid",
        "current_mpid",
        "session_number",
        "ios_image_base_address",
        "ios_image_size",
        "dma_code",
        "plan_version",
        "screen_height",
        "screen_width",
        "screen_dpi",
        "timezone_offset",
        "att_timestamp_unixtime_ms",
    }
)

NUMBER_FIELDS = frozenset(
    {
        "price",
        "quantity",
        "total_amount",
        "tax_amount",
        "shipping_amount",
        "total_product_amount",
        "latitude",
        "longitude",
        "accuracy",
        "lifetime_value_change",
    }
)

BOOLEAN_FIELDS = frozenset(
    {
        "is_goal_defined",
        "is_main_thread",
        "is_non_interactive",
        "register",
        "exception_handled",
        "is_opted_out",
        "successfully_closed",
        "is_first_run",
        "is_upgrade",
        "deleted",
        "is_new_attribute",
        "created_this_batch",
        "is_tablet",
        "push_notification_sound_enabled",
        "push_notification_vibrate_enabled",
        "supports_telephony",
        "has_nfc",
        "bluetooth_enabled",
        "limit_ad_tracking",
        "is_dst",
    }
)

# Keys the schema types as a plain JSON string (numbers are refused there).
STRICT_STRING_FIELDS = frozenset(
    {
        "event_name",
        "screen_name",
        "source_message_id",
        "transaction_id",
        "registration_token",
        "label",
        "url",
        "http_verb",
        "product_impression_list",
        "plan_id",
        "user_attribute_name",
    }
)

# Maps whose values the schema types as scalars (String) or plain strings.
SCALAR_MAP_FIELDS = frozenset({"custom_attributes", "custom_flags"})

UUID_DATA_FIELDS = frozenset({"session_uuid"})
