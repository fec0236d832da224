"""Name pools for the synthetic parts of the demo district (all invented)."""

from __future__ import annotations

import numpy as np

ARTERIAL = [
    "田心大道",
    "响石大道",
    "红旗北路",
    "建设北路",
    "人民北路",
    "北环大道",
    "石峰大道",
    "清水塘大道",
    "铜霞路",
    "井龙大道",
    "九郎山路",
    "湘江北路",
    "时代大道",
    "龙头大道",
    "杉木塘路",
    "霞湾路",
    "云峰大道",
    "港湾路",
    "车站北路",
    "株洲北大道",
]
SECONDARY_STEM = [
    "机车",
    "电力",
    "新民",
    "南峰",
    "北岭",
    "东门",
    "泉塘",
    "金盆",
    "白石",
    "李家",
    "万泥",
    "杨古",
    "新建",
    "先锋",
    "花果",
    "沈家",
    "报亭",
    "井勘",
    "果园",
    "华垅",
    "铜塘",
    "映峰",
    "丁山",
    "杨梅",
    "清石",
    "和平",
    "幸福",
    "光明",
    "团结",
    "友谊",
    "工农",
    "胜利",
    "长青",
]
SECONDARY_SUFFIX = ["路", "街", "西路", "东路", "南路"]
LOCAL_SUFFIX = ["巷", "街", "里", "路"]

COMPOUND_PREFIX = [
    "金",
    "华",
    "湘",
    "翠",
    "锦",
    "盛",
    "阳光",
    "幸福",
    "和美",
    "书香",
    "名都",
    "时代",
    "江山",
    "龙腾",
    "云峰",
    "枫林",
    "桂园",
    "清华",
    "滨江",
    "东方",
    "新城",
    "百合",
    "紫薇",
    "嘉禾",
    "兴业",
    "恒大",
    "碧桂",
    "中央",
    "世纪",
    "天元",
]
COMPOUND_SUFFIX = ["花园", "小区", "名苑", "家园", "公馆", "华庭", "雅苑", "嘉园", "城", "府"]
ESTATE_OWNER = ["电力机车厂", "铁路", "冶炼厂", "化工厂", "车辆厂", "电机厂", "粮食局", "供销社"]
VILLAGE_STEM = ["刘家", "王家", "李家", "张家", "周家", "易家", "罗家", "谭家", "彭家", "龙家"]

SCHOOL = ["第一中学", "第二中学", "实验小学", "中心小学", "第三小学", "外国语学校", "职业中专"]
HOSPITAL = ["人民医院", "中医医院", "妇幼保健院", "社区卫生服务中心"]
ENTERPRISE = ["电力机车有限公司", "冶炼集团", "化工有限公司", "电机有限公司", "物流园", "产业园"]
MARKET = ["农贸市场", "综合市场", "菜市场", "批发市场"]

SURNAME = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华红兰建国志文斌玲辉鹏丹萍")


def pick(rng: np.random.Generator, pool: list[str]) -> str:
    """One name from a pool."""
    return pool[int(rng.integers(len(pool)))]


def person(rng: np.random.Generator) -> str:
    """A plausible Chinese personal name (surname + one or two characters)."""
    given = "".join(pick(rng, GIVEN) for _ in range(int(rng.integers(1, 3))))
    return pick(rng, SURNAME) + given


def compound(rng: np.random.Generator, kind: str) -> str:
    """A compound (小区) name for a kind of estate."""
    if kind == "walkup":
        return f"{pick(rng, ESTATE_OWNER)}{pick(rng, ['宿舍', '生活区', '新村'])}"
    if kind == "village":
        return f"{pick(rng, VILLAGE_STEM)}{pick(rng, ['村', '湾', '冲', '坪'])}"
    return pick(rng, COMPOUND_PREFIX) + pick(rng, COMPOUND_SUFFIX)
