"""The demo store's catalog: 80 products over 8 categories, priced in US dollars."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

CATEGORIES: dict[str, str] = {
    "TEA": "Tea & Teaware",
    "KIT": "Kitchen & Dining",
    "TEX": "Home Textiles",
    "BEA": "Beauty & Skin Care",
    "TEC": "Phone & Audio",
    "LIT": "Smart Home & Lighting",
    "PET": "Pet Supplies",
    "FIT": "Outdoor & Fitness",
}


@dataclass(frozen=True)
class ProductSpec:
    """One product of the demo catalog."""

    sku: str
    title: str
    category_code: str
    price: Decimal  # US dollars
    margin: Decimal  # 0.55 = 55 % gross margin
    warranty_days: int | None
    replenishment_days: int | None  # typical days until a consumable is bought again
    popularity: float

    @property
    def category(self) -> str:
        """The category's display name."""
        return CATEGORIES[self.category_code]

    @property
    def is_consumable(self) -> bool:
        """Whether customers run out of it and buy it again."""
        return self.replenishment_days is not None


# (title, price, margin, warranty days, replenishment days, popularity) per category.
_TABLE: dict[str, tuple[tuple[str, str, str, int | None, int | None, float], ...]] = {
    "TEA": (
        ("Longjing Dragon Well Green Tea, 100 g", "18.90", "0.62", None, 45, 1.4),
        ("Tieguanyin Oolong Tea, 125 g", "16.50", "0.60", None, 45, 1.1),
        ("Aged Pu-erh Tea Cake, 357 g", "34.00", "0.58", None, 120, 0.6),
        ("Jasmine Pearl Green Tea, 100 g", "15.90", "0.61", None, 40, 1.2),
        ("Lapsang Souchong Black Tea, 100 g", "14.50", "0.60", None, 45, 0.7),
        ("White Peony Tea, 80 g", "17.90", "0.59", None, 50, 0.6),
        ("Porcelain Gongfu Tea Set, 8 Pieces", "49.00", "0.55", None, None, 0.5),
        ("Glass Teapot with Infuser, 600 ml", "22.00", "0.57", None, None, 0.9),
        ("Yixing Clay Teapot, 200 ml", "68.00", "0.52", None, None, 0.3),
        ("Bamboo Tea Tray", "39.00", "0.50", None, None, 0.3),
    ),
    "KIT": (
        ("Carbon Steel Wok, 32 cm", "42.00", "0.45", 365, None, 0.8),
        ("Damascus Steel Chef's Knife, 20 cm", "59.00", "0.55", 730, None, 0.7),
        ("Bamboo Steamer Basket, 25 cm", "19.90", "0.58", None, None, 0.8),
        ("Silicone Stretch Lids, Set of 6", "12.90", "0.65", None, None, 1.2),
        ("Electric Rice Cooker, 1.8 L", "79.00", "0.38", 365, None, 0.5),
        ("Temperature Control Electric Kettle", "45.00", "0.40", 365, None, 0.7),
        ("Ceramic Dinner Plates, Set of 4", "36.00", "0.52", None, None, 0.6),
        ("Fiberglass Chopsticks, 10 Pairs", "11.50", "0.66", None, None, 1.0),
        ("Beeswax Food Wraps, 3 Pack", "14.90", "0.62", None, 120, 0.9),
        ("Unbleached Coffee Filters, 200 Count", "8.90", "0.55", None, 60, 1.1),
    ),
    "TEX": (
        ("Mulberry Silk Pillowcase, 22 Momme", "32.00", "0.60", None, None, 1.5),
        ("Silk Sleep Mask", "16.00", "0.64", None, None, 1.2),
        ("Bamboo Bed Sheet Set, Queen", "89.00", "0.50", None, None, 0.6),
        ("Linen Duvet Cover, Queen", "119.00", "0.48", None, None, 0.4),
        ("Waffle Bath Towels, Set of 2", "34.00", "0.55", None, None, 0.8),
        ("Blackout Curtains, 2 Panels", "49.00", "0.50", None, None, 0.6),
        ("Weighted Blanket, 7 kg", "99.00", "0.42", None, None, 0.5),
        ("Cotton Throw Blanket", "39.00", "0.55", None, None, 0.7),
        ("Embroidered Cushion Cover", "18.00", "0.63", None, None, 0.9),
        ("Silk Scrunchies, 6 Pack", "12.00", "0.68", None, None, 1.1),
    ),
    "BEA": (
        ("Hydrating Sheet Masks, 10 Pack", "19.90", "0.70", None, 30, 1.6),
        ("Hyaluronic Acid Serum, 30 ml", "24.00", "0.72", None, 45, 1.3),
        ("Vitamin C Brightening Serum, 30 ml", "26.00", "0.71", None, 45, 1.2),
        ("Rice Water Cleansing Foam, 150 ml", "14.00", "0.68", None, 40, 1.0),
        ("Sunscreen SPF 50, 50 ml", "18.00", "0.66", None, 40, 1.1),
        ("Rose Quartz Face Roller", "22.00", "0.70", None, None, 0.8),
        ("Jade Gua Sha Stone", "16.00", "0.72", None, None, 0.9),
        ("Herbal Hair Growth Oil, 100 ml", "21.00", "0.67", None, 60, 0.7),
        ("Makeup Brush Set, 12 Pieces", "28.00", "0.62", None, None, 0.6),
        ("Reusable Makeup Remover Pads, 16 Pack", "11.00", "0.66", None, 180, 0.8),
    ),
    "TEC": (
        ("USB-C Fast Charger, 65 W", "35.00", "0.45", 365, None, 1.2),
        ("Braided USB-C Cable, 2 m, 2 Pack", "14.00", "0.62", 180, None, 1.4),
        ("Noise Cancelling Wireless Earbuds", "69.00", "0.40", 365, None, 1.0),
        ("Magnetic Power Bank, 10,000 mAh", "39.00", "0.42", 365, None, 1.0),
        ("Clear MagSafe Phone Case", "19.00", "0.70", 90, None, 1.3),
        ("Tempered Glass Screen Protector, 3 Pack", "12.00", "0.75", None, None, 1.2),
        ("Waterproof Bluetooth Speaker", "49.00", "0.41", 365, None, 0.6),
        ("Silicone Smartwatch Band", "15.00", "0.72", None, None, 0.9),
        ("3-in-1 Wireless Charging Stand", "55.00", "0.43", 365, None, 0.7),
        ("Phone Tripod with Remote", "24.00", "0.58", 180, None, 0.6),
    ),
    "LIT": (
        ("Smart LED Strip Lights, 10 m", "32.00", "0.50", 365, None, 1.2),
        ("Wi-Fi Smart Plug, 4 Pack", "29.00", "0.48", 365, None, 0.8),
        ("Sunset Projection Lamp", "26.00", "0.55", 365, None, 1.0),
        ("Rice Paper Pendant Lamp", "45.00", "0.52", None, None, 0.5),
        ("Motion Sensor Night Lights, 3 Pack", "18.00", "0.57", 365, None, 0.9),
        ("Color Smart Bulb, 2 Pack", "24.00", "0.50", 730, None, 0.8),
        ("Dimmable LED Desk Lamp", "39.00", "0.47", 730, None, 0.6),
        ("Solar Garden Lanterns, 6 Pack", "34.00", "0.53", 365, None, 0.6),
        ("Moroccan Metal Lantern", "29.00", "0.56", None, None, 0.7),
        ("Warm White Fairy Lights, 20 m", "16.00", "0.60", 180, None, 1.1),
    ),
    "PET": (
        ("Cat Litter Deodoriser, 700 g", "12.00", "0.60", None, 30, 1.2),
        ("Freeze-Dried Chicken Treats, 200 g", "15.00", "0.55", None, 30, 1.3),
        ("Automatic Pet Feeder, 4 L", "69.00", "0.40", 365, None, 0.6),
        ("Pet Water Fountain, 2.5 L", "36.00", "0.45", 365, None, 0.8),
        ("Fountain Replacement Filters, 6 Pack", "13.00", "0.65", None, 60, 0.9),
        ("Cat Scratching Board, 3 Pack", "19.00", "0.58", None, 90, 0.8),
        ("No-Pull Dog Harness", "25.00", "0.60", None, None, 0.9),
        ("Self-Cleaning Slicker Brush", "16.00", "0.63", None, None, 0.8),
        ("Feather Wand Cat Toy", "9.90", "0.68", None, None, 0.9),
        ("Dog Poop Bags, 300 Count", "11.00", "0.62", None, 45, 1.0),
    ),
    "FIT": (
        ("TPE Yoga Mat, 6 mm", "32.00", "0.55", None, None, 1.1),
        ("Resistance Bands, Set of 5", "19.00", "0.66", None, None, 1.2),
        ("Insulated Water Bottle, 750 ml", "24.00", "0.58", None, None, 1.1),
        ("Rechargeable Camping Lantern", "29.00", "0.48", 365, None, 0.7),
        ("High-Density Foam Roller", "22.00", "0.57", None, None, 0.7),
        ("Adjustable Jump Rope", "12.00", "0.66", None, None, 0.8),
        ("Ultralight Travel Hammock", "36.00", "0.52", None, None, 0.5),
        ("Electrolyte Drink Tablets, 40 Count", "16.00", "0.60", None, 30, 0.9),
        ("Carbon Trekking Poles, Pair", "59.00", "0.47", 365, None, 0.4),
        ("Compression Sleeves, Pair", "17.00", "0.63", None, None, 0.7),
    ),
}

PRODUCTS: tuple[ProductSpec, ...] = tuple(
    ProductSpec(
        sku=f"{code}-{number:03d}",
        title=title,
        category_code=code,
        price=Decimal(price),
        margin=Decimal(margin),
        warranty_days=warranty,
        replenishment_days=replenishment,
        popularity=popularity,
    )
    for code, rows in _TABLE.items()
    for number, (title, price, margin, warranty, replenishment, popularity) in enumerate(
        rows, start=1
    )
)

PRODUCTS_BY_SKU: dict[str, ProductSpec] = {product.sku: product for product in PRODUCTS}

PRODUCTS_BY_CATEGORY: dict[str, tuple[ProductSpec, ...]] = {
    code: tuple(product for product in PRODUCTS if product.category_code == code)
    for code in CATEGORIES
}


def product_rows(store_id: int, created_at: datetime) -> list[dict[str, Any]]:
    """The catalog as rows for the products table."""
    return [
        {
            "store_id": store_id,
            "sku": product.sku,
            "title": product.title,
            "category": product.category,
            "price": product.price,
            "currency": "USD",
            "margin": product.margin,
            "warranty_days": product.warranty_days,
            "replenishment_days": product.replenishment_days,
            "external_id": str(8_147_000_000_000 + number * 4_099),
            "created_at": created_at,
            "updated_at": created_at,
        }
        for number, product in enumerate(PRODUCTS, start=1)
    ]
